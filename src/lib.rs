//! lumpy: one binary that turns honeynet sensors into a distributed archive.
pub mod capture;
pub mod mirror;
pub mod records;
pub mod store;
