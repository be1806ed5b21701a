//! Access control: who the caller is (principals, access keys) and what it may do (key policies, authorization).

pub mod authz;
pub mod credentials;
pub mod policy;
pub mod principals;
