//! Index expressions and what they may reach: parsing and matching against a token's patterns
//! (`index`), the backend's answer about what is behind an expression (`resolution`), hidden and
//! system indices (`hidden`) and esgate's own store index (`store_guard`).

pub mod hidden;
pub mod index;
pub mod resolution;
pub mod store_guard;
