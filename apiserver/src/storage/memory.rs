//! The in-memory backend: nothing is kept across restarts. For tests and benchmarks.

use serde_json::Value;

use super::kv::{Backend, Change};
use super::{Result, Revision};

/// A [`Backend`] that keeps nothing.
#[derive(Debug, Default)]
pub struct Memory;

impl Backend for Memory {
    fn load(&mut self) -> Result<(Vec<(String, Value)>, Revision)> {
        Ok((Vec::new(), 0))
    }

    fn commit(&mut self, _changes: &[Change], _revision: Revision) -> Result<()> {
        Ok(())
    }
}
