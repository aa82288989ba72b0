use super::*;
use http_body_util::BodyExt;

async fn body_of(r: Response<Body>) -> String {
    let bytes = r.into_body().collect().await.expect("body").to_bytes();
    String::from_utf8(bytes.to_vec()).expect("utf-8")
}

#[tokio::test]
async fn embedded_files_are_served_with_their_type_and_the_security_headers() {
    let table: &[(&str, u16, Option<&str>, &str)] = &[
        (
            "/ui/",
            200,
            Some("text/html; charset=utf-8"),
            "<!doctype html>",
        ),
        (
            "/ui/index.html",
            200,
            Some("text/html; charset=utf-8"),
            "<!doctype html>",
        ),
        ("/ui/app.css", 200, Some("text/css; charset=utf-8"), ""),
        (
            "/ui/app.js",
            200,
            Some("text/javascript; charset=utf-8"),
            "\"use strict\"",
        ),
        ("/ui/favicon.svg", 200, Some("image/svg+xml"), "<svg"),
        (
            "/ui/nope.js",
            404,
            Some("text/plain; charset=utf-8"),
            "not found",
        ),
        (
            "/ui/../tokens",
            404,
            Some("text/plain; charset=utf-8"),
            "not found",
        ),
        ("/ui", 308, None, ""),
    ];
    for (path, status, content_type, starts) in table {
        assert!(is_ui_path(path), "{path}");
        let r = serve(&Method::GET, path);
        assert_eq!(r.status().as_u16(), *status, "{path}");
        assert_eq!(
            r.headers()
                .get(header::CONTENT_TYPE)
                .map(|v| v.to_str().unwrap()),
            *content_type,
            "{path}"
        );
        for (name, value) in SECURITY_HEADERS {
            assert_eq!(r.headers()[*name], *value, "{path} {name}");
        }
        let body = body_of(r).await;
        assert!(body.starts_with(starts), "{path}: {body:.40}");
    }
    assert_eq!(
        serve(&Method::GET, "/ui").headers()[header::LOCATION],
        "/ui/"
    );
    let r = serve(&Method::POST, "/ui/");
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers()[header::ALLOW], "GET, HEAD");
    for path in ["/uix", "/tokens", "/", "/u/"] {
        assert!(!is_ui_path(path), "{path}");
    }
}

#[test]
fn the_csp_allows_nothing_inline_and_the_page_needs_nothing_inline() {
    assert!(!CSP.contains("unsafe"), "{CSP}");
    assert!(CSP.contains("script-src 'self'") && CSP.contains("frame-ancestors 'none'"));
    // Nothing the CSP would block: no inline script or style, no handler attributes, no
    // external origin.
    for (name, text) in [("index.html", INDEX_HTML), ("app.js", APP_JS)] {
        for banned in [
            "<script>",
            "style=",
            " onclick",
            " onload",
            "http://",
            "https://",
            "innerHTML",
            "eval(",
        ] {
            assert!(!text.contains(banned), "{name} contains {banned}");
        }
    }
    assert!(INDEX_HTML.contains("<script src=\"app.js\" defer></script>"));
}
