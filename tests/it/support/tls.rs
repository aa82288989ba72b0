//! Test TLS material: a fresh CA and a server certificate for `localhost` and `127.0.0.1`
//! signed by it, generated with rcgen into a temporary directory, plus a rustls server config
//! built from them for tiny in-process TLS servers, and the `[listen.tls]` section of an
//! esgate serving them.
//!
//! Invariant: keys are generated per call and live only in the returned temp dir, which is
//! removed when `TlsFiles` is dropped; nothing is written to the repository.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

/// PEM files of a CA and a server certificate (SANs `localhost`, `127.0.0.1`) it signed.
pub struct TlsFiles {
    /// The CA certificate, to give clients as their only trust anchor.
    pub ca_cert: PathBuf,
    /// The server certificate chain (leaf only).
    pub cert: PathBuf,
    /// The server's private key (PKCS#8).
    pub key: PathBuf,
    _dir: tempfile::TempDir,
}

/// A `[listen.tls]` section serving the certificate chain at `cert` with the key at `key` (a
/// test adds keys such as `handshake_timeout` after it).
pub fn listen_section(cert: &Path, key: &Path) -> String {
    format!(
        "[listen.tls]\ncert_file = {:?}\nkey_file = {:?}\n",
        cert.display().to_string(),
        key.display().to_string()
    )
}

/// A TLS client connector trusting only the CA in `ca_pem`, offering `alpn`.
pub fn client_connector(ca_pem: &std::path::Path, alpn: &[u8]) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca_pem).expect("ca");
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.expect("pem")).expect("ca cert");
    }
    let provider = esgate::config::tls_crypto();
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    // Empty: no ALPN offered.
    config.alpn_protocols = if alpn.is_empty() {
        Vec::new()
    } else {
        vec![alpn.to_vec()]
    };
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

// === impl TlsFiles ===

impl TlsFiles {
    /// Generates the CA and server certificate and writes `ca.pem`, `server.pem` and
    /// `server.key` into a new temp dir.
    pub fn generate() -> TlsFiles {
        let ca_key = KeyPair::generate().expect("key generation works in tests");
        let mut ca_params =
            CertificateParams::new(Vec::<String>::new()).expect("empty SAN list is valid");
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "esgate test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = ca_params
            .self_signed(&ca_key)
            .expect("self-signing a CA works in tests");

        let server_key = KeyPair::generate().expect("key generation works in tests");
        let mut server_params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("localhost and 127.0.0.1 are valid SANs");
        server_params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let server = server_params
            .signed_by(&server_key, &ca, &ca_key)
            .expect("signing the server certificate works in tests");

        let dir = tempfile::Builder::new()
            .prefix("esgate-test-tls-")
            .tempdir()
            .expect("the system temp dir is writable in tests");
        let write = |name: &str, contents: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, contents).expect("the temp dir is writable");
            path
        };
        TlsFiles {
            ca_cert: write("ca.pem", ca.pem()),
            cert: write("server.pem", server.pem()),
            key: write("server.key", server_key.serialize_pem()),
            _dir: dir,
        }
    }

    /// The `[listen.tls]` section of an esgate serving the generated certificate.
    pub fn listen_section(&self) -> String {
        listen_section(&self.cert, &self.key)
    }

    /// A rustls server config (ring provider, ALPN http/1.1) serving the generated certificate.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let certs = rustls_pemfile::certs(&mut read(&self.cert).as_slice())
            .collect::<Result<Vec<_>, _>>()
            .expect("the generated certificate PEM parses");
        let key = rustls_pemfile::private_key(&mut read(&self.key).as_slice())
            .expect("the generated key PEM parses")
            .expect("the generated key PEM holds a key");
        let provider = esgate::config::tls_crypto();
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("the generated certificate and key match");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

fn read(path: &std::path::Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// A TLS-terminating relay on 127.0.0.1 in front of the plain backend at `to`: an https
/// backend for esgate to use. One backend connection per TLS connection, so a backend's
/// connection count is the TLS connections'.
pub async fn relay(tls: &TlsFiles, to: std::net::SocketAddr) -> std::net::SocketAddr {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(s).await {
                    if let Ok(mut plain) = tokio::net::TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                    }
                }
            });
        }
    });
    addr
}
