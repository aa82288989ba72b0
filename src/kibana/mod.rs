//! Share links' Kibana half (issue #16): link paths ([`path`]).
pub mod path;
