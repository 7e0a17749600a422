//! The durable embedded backend on redb: one table of objects (key → JSON) and one
//! of metadata (the latest revision). Every commit is fsynced before it returns.

use std::path::Path;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde_json::Value;

use super::kv::{Backend, Change};
use super::{Error, Result, Revision};

const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const REVISION: &str = "revision";
/// redb's page cache (1 GiB by default). Everything is read once at start and
/// served from memory after, so the cache only holds the pages commits touch.
/// redb keeps at most half of it for a transaction's dirty pages before it
/// writes them out early: 4 MiB is several hundred Works in one commit.
const CACHE_BYTES: usize = 8 << 20;

/// A [`Backend`] storing objects in a redb database file.
pub struct Redb {
    db: redb::Database,
}

fn backend_error(e: impl Into<redb::Error>) -> Error {
    Error::Backend(Box::new(e.into()))
}

impl Redb {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(backend_error)?;
        let txn = db.begin_write().map_err(backend_error)?;
        txn.open_table(OBJECTS).map_err(backend_error)?;
        txn.open_table(META).map_err(backend_error)?;
        txn.commit().map_err(backend_error)?;
        Ok(Redb { db })
    }
}

impl Backend for Redb {
    fn load(&mut self) -> Result<(Vec<(String, Value)>, Revision)> {
        let txn = self.db.begin_read().map_err(backend_error)?;
        let meta = txn.open_table(META).map_err(backend_error)?;
        let revision = meta
            .get(REVISION)
            .map_err(backend_error)?
            .map(|v| v.value())
            .unwrap_or(0);
        let objects = txn.open_table(OBJECTS).map_err(backend_error)?;
        let mut out = Vec::new();
        for entry in objects.iter().map_err(backend_error)? {
            let (key, value) = entry.map_err(backend_error)?;
            let object: Value =
                serde_json::from_slice(value.value()).map_err(|e| Error::Backend(Box::new(e)))?;
            out.push((key.value().to_owned(), object));
        }
        Ok((out, revision))
    }

    fn commit(&mut self, changes: &[Change], revision: Revision) -> Result<()> {
        let txn = self.db.begin_write().map_err(backend_error)?;
        {
            let mut objects = txn.open_table(OBJECTS).map_err(backend_error)?;
            for change in changes {
                match change {
                    Change::Put { key, json } => {
                        objects
                            .insert(key.as_ref(), json.as_ref())
                            .map_err(backend_error)?;
                    }
                    Change::Delete { key } => {
                        objects.remove(key.as_ref()).map_err(backend_error)?;
                    }
                }
            }
            let mut meta = txn.open_table(META).map_err(backend_error)?;
            meta.insert(REVISION, revision).map_err(backend_error)?;
        }
        txn.commit().map_err(backend_error)?;
        Ok(())
    }
}
