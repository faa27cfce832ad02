//! Where backups are kept: an [`ObjectStore`] (the local file system under the data directory by default, or
//! any S3-compatible store), with archives streamed in as multipart uploads (never whole in memory or on a
//! temporary disk) and read back as streams.

use std::sync::Arc;

use futures_util::{StreamExt as _, TryStreamExt as _};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _, WriteMultipart};
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};

use crate::orchestrator::files::ByteStream;

/// Bytes of one uploaded part: S3's smallest but for the last, so a backup holds at most this many
/// bytes per part in flight.
const PART: usize = 8 * 1024 * 1024;
/// Parts uploaded at once.
const PARTS_IN_FLIGHT: usize = 2;
/// Tries of one request to a store that failed: a few, within half a minute, so that a store that is down
/// fails the backup soon (it shows as failed, and can be taken again) rather than holding it for minutes.
const RETRIES: usize = 3;
const RETRY_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

/// `SPAWNPOINT_BACKUPS` and what an S3 store needs.
#[derive(Debug, Clone, PartialEq)]
pub enum BackupTarget {
    /// Unset: `backups/` in the data directory.
    DataDir,
    /// `file:///path`.
    Directory(std::path::PathBuf),
    /// `s3://bucket/prefix`, with the `AWS_…` settings.
    S3(S3Target),
}

#[derive(Debug, Clone)]
pub struct S3Target {
    pub bucket: String,
    pub prefix: String,
    /// `AWS_ENDPOINT_URL`: a store other than AWS (MinIO, Backblaze B2, R2).
    pub endpoint: Option<String>,
    /// `AWS_REGION`.
    pub region: Option<String>,
    /// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`; without them, what the environment provides (an
    /// instance role, say).
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<SecretString>,
    /// `AWS_ALLOW_HTTP=true`: a plain-HTTP endpoint (a store on the same network).
    pub allow_http: bool,
}

impl PartialEq for S3Target {
    fn eq(&self, other: &Self) -> bool {
        (&self.bucket, &self.prefix, &self.endpoint, &self.region, &self.access_key_id, self.allow_http)
            == (&other.bucket, &other.prefix, &other.endpoint, &other.region, &other.access_key_id, other.allow_http)
    }
}

impl BackupTarget {
    /// `file:///path` or `s3://bucket/prefix`; the S3 settings come from `lookup`.
    pub fn parse(text: &str, lookup: &impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        if let Some(path) = text.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(format!("`{text}` must name an absolute directory, like file:///var/backups"));
            }
            return Ok(Self::Directory(path.into()));
        }
        let Some(rest) = text.strip_prefix("s3://") else {
            return Err(format!("`{text}` is neither file:///path nor s3://bucket/prefix"));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("`{text}` names no bucket"));
        }
        let allow_http = match lookup("AWS_ALLOW_HTTP").as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => return Err(format!("AWS_ALLOW_HTTP is `{other}`, neither true nor false")),
        };
        Ok(Self::S3(S3Target {
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
            endpoint: lookup("AWS_ENDPOINT_URL"),
            region: lookup("AWS_REGION"),
            access_key_id: lookup("AWS_ACCESS_KEY_ID"),
            secret_access_key: lookup("AWS_SECRET_ACCESS_KEY").map(SecretString::from),
            allow_http,
        }))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the backup store refused or failed")]
    Store(#[from] object_store::Error),
    #[error("the archive could not be read")]
    Read(#[source] std::io::Error),
}

impl StoreError {
    /// What a customer reads about a failed backup: the kind of failure, never the store's own words (which may
    /// name buckets, keys and hosts).
    pub fn customer_words(&self) -> &'static str {
        match self {
            StoreError::Store(object_store::Error::NotFound { .. }) => "the backup store has no such bucket or object",
            StoreError::Store(
                object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. },
            ) => "the backup store refused Spawnpoint's credentials",
            StoreError::Store(_) => "the backup store failed while the archive was written",
            StoreError::Read(_) => "the server's files could not be read",
        }
    }
}

/// What a stored archive is: its size and SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub size: u64,
    pub sha256: String,
}

pub struct BackupStore {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    /// Where it is, for the log (never a secret).
    pub describe: String,
}

impl BackupStore {
    pub fn new(target: &BackupTarget, data_dir: &std::path::Path) -> Result<Self, String> {
        match target {
            BackupTarget::DataDir | BackupTarget::Directory(_) => {
                let dir = match target {
                    BackupTarget::Directory(dir) => dir.clone(),
                    _ => data_dir.join("backups"),
                };
                std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
                let store = object_store::local::LocalFileSystem::new_with_prefix(&dir)
                    .map_err(|e| format!("opening {}: {e}", dir.display()))?;
                Ok(Self {
                    store: Arc::new(store),
                    prefix: String::new(),
                    describe: format!("file://{}", dir.display()),
                })
            }
            BackupTarget::S3(s3) => {
                let retry = object_store::RetryConfig {
                    max_retries: RETRIES,
                    retry_timeout: RETRY_WITHIN,
                    ..Default::default()
                };
                let mut builder = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(&s3.bucket)
                    .with_allow_http(s3.allow_http)
                    .with_retry(retry);
                if let Some(endpoint) = &s3.endpoint {
                    builder = builder.with_endpoint(endpoint);
                }
                if let Some(region) = &s3.region {
                    builder = builder.with_region(region);
                }
                if let Some(key) = &s3.access_key_id {
                    builder = builder.with_access_key_id(key);
                }
                if let Some(secret) = &s3.secret_access_key {
                    builder = builder.with_secret_access_key(secret.expose_secret());
                }
                // The store's error says which setting is wrong; it never holds the secret itself.
                let store = builder.build().map_err(|e| e.to_string())?;
                let describe = format!("s3://{}/{}", s3.bucket, s3.prefix);
                Ok(Self { store: Arc::new(store), prefix: s3.prefix.clone(), describe })
            }
        }
    }

    fn path(&self, key: &str) -> ObjectPath {
        if self.prefix.is_empty() { ObjectPath::from(key) } else { ObjectPath::from(format!("{}/{key}", self.prefix)) }
    }

    /// Streams `body` into the object `key` as a multipart upload, hashing it on the way. The object exists
    /// only once the whole stream is in; a failure aborts the upload.
    pub async fn put(&self, key: &str, mut body: ByteStream) -> Result<Stored, StoreError> {
        let upload = self.store.put_multipart(&self.path(key)).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
        let (mut size, mut hash) = (0u64, Sha256::new());
        let written: Result<(), StoreError> = async {
            while let Some(piece) = body.next().await {
                let piece = piece.map_err(StoreError::Read)?;
                writer.wait_for_capacity(PARTS_IN_FLIGHT).await?;
                hash.update(&piece);
                size += piece.len() as u64;
                writer.write(&piece);
            }
            Ok(())
        }
        .await;
        match written {
            Ok(()) => {
                writer.finish().await?;
                Ok(Stored { size, sha256: hex::encode(hash.finalize()) })
            }
            Err(error) => {
                let _ = writer.abort().await;
                Err(error)
            }
        }
    }

    /// The object's bytes as they come.
    pub async fn get(&self, key: &str) -> Result<ByteStream, StoreError> {
        let result = self.store.get(&self.path(key)).await?;
        Ok(result.into_stream().map_err(std::io::Error::other).boxed())
    }

    /// Deletes an object; one already gone is success.
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Deletes every object under `dir/` (a deleted server's backups).
    pub async fn delete_all(&self, dir: &str) -> Result<(), StoreError> {
        let prefix = self.path(dir);
        let keys: Vec<ObjectPath> = self.store.list(Some(&prefix)).map_ok(|meta| meta.location).try_collect().await?;
        for key in keys {
            match self.store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }
}
