//! The gRPC face of [`Snapshots`]: containerd's Snapshots service (the `containerd-snapshots`
//! crate, tonic) on a unix socket. Each request runs the synchronous operation on tokio's
//! blocking pool; errors become the status codes containerd maps to its own.

// tonic's Status is big, and it is the error type the containerd-snapshots trait requires.
#![allow(clippy::result_large_err)]

use super::{ErrorCode, SnapshotError, Snapshots, io_err};
use crate::db::{SnapshotKind, SnapshotRecord};
use containerd_snapshots::tonic::{self, Status};
use containerd_snapshots::{Info, Kind, Snapshotter, Usage, api};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

struct Service(Arc<Snapshots>);

fn status(op: &str, e: SnapshotError) -> Status {
    let text = format!("{op}: {}", crate::error::Chain(&e));
    match e.code() {
        ErrorCode::NotFound => Status::not_found(text),
        ErrorCode::AlreadyExists => Status::already_exists(text),
        ErrorCode::FailedPrecondition => Status::failed_precondition(text),
        ErrorCode::InvalidArgument => Status::invalid_argument(text),
        ErrorCode::Internal => {
            tracing::error!("{text}");
            Status::internal(text)
        }
    }
}

impl Service {
    /// Runs `op` on the blocking pool.
    async fn run<T: Send + 'static>(
        &self,
        name: &'static str,
        op: impl FnOnce(&Snapshots) -> Result<T, SnapshotError> + Send + 'static,
    ) -> Result<T, Status> {
        let snapshots = self.0.clone();
        let start = std::time::Instant::now();
        let result = tokio::task::spawn_blocking(move || op(&snapshots))
            .await
            .map_err(|e| Status::internal(format!("{name}: {e}")))?
            .map_err(|e| status(name, e));
        tracing::debug!("{name} took {:?}", start.elapsed());
        result
    }
}

fn info(record: SnapshotRecord) -> Info {
    Info {
        kind: match record.kind {
            SnapshotKind::View => Kind::View,
            SnapshotKind::Active => Kind::Active,
            SnapshotKind::Committed => Kind::Committed,
        },
        name: record.key,
        parent: record.parent.unwrap_or_default(),
        labels: record.labels.into_iter().collect(),
        created_at: record.created,
        updated_at: record.updated,
    }
}

fn mounts(specs: Vec<super::MountSpec>) -> Vec<api::types::Mount> {
    specs
        .into_iter()
        .map(|m| api::types::Mount {
            r#type: m.kind,
            source: m.source,
            target: String::new(),
            options: m.options,
        })
        .collect()
}

fn sorted(labels: HashMap<String, String>) -> BTreeMap<String, String> {
    labels.into_iter().collect()
}

#[tonic::async_trait]
impl Snapshotter for Service {
    type Error = Status;
    type InfoStream = tokio_stream::Iter<std::vec::IntoIter<Result<Info, Status>>>;

    async fn stat(&self, key: String) -> Result<Info, Status> {
        tracing::debug!("stat {key:?}");
        self.run("stat", move |s| s.stat(&key)).await.map(info)
    }

    async fn update(&self, new: Info, fieldpaths: Option<Vec<String>>) -> Result<Info, Status> {
        tracing::debug!("update {:?} {fieldpaths:?}", new.name);
        let paths = fieldpaths.unwrap_or_default();
        self.run("update", move |s| {
            s.update(&new.name, sorted(new.labels), &paths)
        })
        .await
        .map(info)
    }

    async fn usage(&self, key: String) -> Result<Usage, Status> {
        tracing::debug!("usage {key:?}");
        let usage = self.run("usage", move |s| s.usage(&key)).await?;
        Ok(Usage {
            size: i64::try_from(usage.size).unwrap_or(i64::MAX),
            inodes: i64::try_from(usage.inodes).unwrap_or(i64::MAX),
        })
    }

    async fn mounts(&self, key: String) -> Result<Vec<api::types::Mount>, Status> {
        tracing::debug!("mounts {key:?}");
        self.run("mounts", move |s| s.mounts(&key))
            .await
            .map(mounts)
    }

    async fn prepare(
        &self,
        key: String,
        parent: String,
        labels: HashMap<String, String>,
    ) -> Result<Vec<api::types::Mount>, Status> {
        tracing::info!("prepare {key:?} on {parent:?}");
        self.run("prepare", move |s| {
            s.prepare(SnapshotKind::Active, &key, &parent, sorted(labels))
        })
        .await
        .map(mounts)
    }

    async fn view(
        &self,
        key: String,
        parent: String,
        labels: HashMap<String, String>,
    ) -> Result<Vec<api::types::Mount>, Status> {
        tracing::info!("view {key:?} of {parent:?}");
        self.run("view", move |s| {
            s.prepare(SnapshotKind::View, &key, &parent, sorted(labels))
        })
        .await
        .map(mounts)
    }

    async fn commit(
        &self,
        name: String,
        key: String,
        labels: HashMap<String, String>,
    ) -> Result<(), Status> {
        tracing::info!("commit {key:?} as {name:?}");
        self.run("commit", move |s| s.commit(&name, &key, sorted(labels)))
            .await
    }

    async fn remove(&self, key: String) -> Result<(), Status> {
        tracing::info!("remove {key:?}");
        self.run("remove", move |s| s.remove(&key)).await
    }

    async fn clear(&self) -> Result<(), Status> {
        tracing::debug!("cleanup");
        self.run("cleanup", |s| s.cleanup()).await
    }

    async fn list(
        &self,
        _snapshotter: String,
        filters: Vec<String>,
    ) -> Result<Self::InfoStream, Status> {
        tracing::debug!("list {filters:?}");
        let records = self.run("list", move |s| s.list(&filters)).await?;
        let infos: Vec<Result<Info, Status>> = records.into_iter().map(|r| Ok(info(r))).collect();
        Ok(tokio_stream::iter(infos))
    }
}

/// Serves the snapshots of the store at `root` on the unix socket `address` until SIGTERM
/// or SIGINT. A socket left by a dead snapshotter is replaced; a live one is an error.
pub fn serve(root: &Path, address: &Path) -> Result<(), SnapshotError> {
    let snapshots = Arc::new(Snapshots::open(root)?);
    snapshots.run_ingester();
    if let Some(dir) = address.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    if std::os::unix::net::UnixStream::connect(address).is_ok() {
        return Err(SnapshotError::Io {
            path: address.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "another process serves this socket",
            ),
        });
    }
    match std::fs::remove_file(address) {
        Ok(()) => tracing::info!("removed the stale socket {}", address.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(address)(e)),
    }
    let closer = Arc::downgrade(&snapshots);
    std::thread::spawn(move || {
        while let Some(snapshots) = closer.upgrade() {
            snapshots.close_idle_db();
            drop(snapshots);
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("snapshotter")
        .build()
        .map_err(io_err(address))?;
    let served = runtime.block_on(async {
        let listener = tokio::net::UnixListener::bind(address).map_err(io_err(address))?;
        let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
        tracing::info!(
            "serving snapshots of {} on {}",
            root.display(),
            address.display()
        );
        tonic::transport::Server::builder()
            .add_service(containerd_snapshots::server(Arc::new(Service(snapshots))))
            .serve_with_incoming_shutdown(incoming, shutdown())
            .await
            .map_err(|e| SnapshotError::Io {
                path: address.to_path_buf(),
                source: std::io::Error::other(e),
            })
    });
    let _ = std::fs::remove_file(address);
    tracing::info!("snapshotter stopped");
    served
}

/// Resolves on the first SIGTERM or SIGINT.
async fn shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot listen for SIGTERM/SIGINT");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        _ = int.recv() => tracing::info!("SIGINT: stopping"),
    }
}
