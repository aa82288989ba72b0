//! TEMPORARY stand-in for the admin API logic (being written on another branch).

use std::net::IpAddr;
use std::sync::Arc;

pub struct AdminRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub body: &'a [u8],
    pub client: IpAddr,
}
pub struct AdminResponse {
    pub status: u16,
    pub body: Option<serde_json::Value>,
}
#[derive(Clone, Debug, Default)]
pub struct Policies {
    pub max_lifetime: Option<std::time::Duration>,
    pub require_expiry: bool,
    pub require_ip_filter: bool,
    pub require_filters: bool,
    pub allow_permission_updates: bool,
}
pub trait AuditSink: Send + Sync {
    fn admin_event(&self, event: serde_json::Value);
}
pub struct AdminContext {
    pub store: Arc<crate::store::Store>,
    pub policies: Policies,
    pub audit: Arc<dyn AuditSink>,
}
pub async fn handle(_ctx: &AdminContext, _req: AdminRequest<'_>, _now: i64) -> AdminResponse {
    AdminResponse {
        status: 404,
        body: None,
    }
}
pub async fn sweep_expired(
    _store: &crate::store::Store,
    _now: i64,
) -> Result<usize, crate::store::StoreError> {
    Ok(0)
}
