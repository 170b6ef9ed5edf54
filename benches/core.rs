//! Benchmarks of the pure core and the store: tar parsing, object puts (new and duplicate
//! content), index build and lookup against the number of layers (1 → 1000).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use snapfs::index::{Index, LayerInput, build};
use snapfs::layer::{ObjectSink, parse_layer};
use snapfs::model::{Digest, Entry, EntryPath, Ino, Kind, LayerId, Meta};
use snapfs::store::Store;
use std::hint::black_box;
use std::io::Read;

/// Hashes bodies and keeps nothing: parsing cost without storage.
struct HashOnly;

impl ObjectSink for HashOnly {
    fn put(&self, body: &mut dyn Read, _size: u64) -> std::io::Result<Digest> {
        let mut bytes = Vec::new();
        body.read_to_end(&mut bytes)?;
        Ok(Digest::of(&bytes))
    }
}

/// A layer tar of `files` files of `size` bytes in 20 directories.
fn layer_tar(files: usize, size: usize) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for i in 0..files {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_size(size as u64);
        let body: Vec<u8> = (0..size).map(|j| (i * 31 + j) as u8).collect();
        b.append_data(
            &mut h,
            format!("usr/share/d{:02}/file{i:05}", i % 20),
            &body[..],
        )
        .expect("append");
    }
    b.into_inner().expect("tar")
}

fn tar_parse(c: &mut Criterion) {
    let tar = layer_tar(2000, 1024);
    let mut group = c.benchmark_group("tar_parse");
    group.throughput(Throughput::Bytes(tar.len() as u64));
    group.bench_function("2000 files of 1 KiB", |b| {
        b.iter(|| parse_layer(black_box(&tar[..]), &HashOnly).expect("parse"))
    });
    group.finish();
}

fn store_put(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let mut body = vec![7u8; 64 * 1024];
    let mut group = c.benchmark_group("store_put_64KiB");
    group.throughput(Throughput::Bytes(body.len() as u64));
    let mut n: u64 = 0;
    group.bench_function("new content", |b| {
        b.iter(|| {
            n += 1;
            body[..8].copy_from_slice(&n.to_le_bytes());
            store.put_bytes(black_box(&body)).expect("put")
        })
    });
    store.put_bytes(&body).expect("put");
    group.bench_function("duplicate content", |b| {
        b.iter(|| store.put_bytes(black_box(&body)).expect("put"))
    });
    group.finish();
}

fn entry(path: &str, kind: Kind) -> Entry {
    Entry {
        path: EntryPath::parse(path.as_bytes()).expect("path"),
        kind,
        meta: Meta {
            mode: 0o644,
            ..Meta::default()
        },
    }
}

/// Where file `i` of the stack lives: depth 5, 350 directories.
fn file_path(i: usize) -> String {
    format!("a/b{}/c{}/d{}/f{i}", i % 10, i % 7, i % 5)
}

/// The same 10 000 visible files spread over `layers` layers, each layer also replacing one
/// file of the layer below and whiting out another, as real stacks do.
fn stack(layers: usize) -> Vec<Vec<Entry>> {
    const FILES: usize = 10_000;
    let per_layer = FILES / layers;
    (0..layers)
        .map(|l| {
            let mut entries = Vec::with_capacity(per_layer + 2);
            for i in l * per_layer..(l + 1) * per_layer {
                let path = file_path(i);
                entries.push(entry(
                    &path,
                    Kind::File {
                        digest: Digest::of(path.as_bytes()),
                        size: i as u64,
                    },
                ));
            }
            if l > 0 {
                entries.push(entry(
                    "a/b0/c0/d0/f0",
                    Kind::File {
                        digest: Digest::of(&[l as u8]),
                        size: l as u64,
                    },
                ));
                entries.push(entry(&format!("a/b1/gone{l}"), Kind::Whiteout));
            }
            entries
        })
        .collect()
}

fn layer_inputs(stack: &[Vec<Entry>]) -> Vec<LayerInput<'_>> {
    stack
        .iter()
        .enumerate()
        .map(|(i, e)| LayerInput {
            id: LayerId(Digest::of(&i.to_le_bytes())),
            entries: e,
        })
        .collect()
}

fn index_build(c: &mut Criterion) {
    let mut group = c.benchmark_group("index_build_10k_files");
    group.sample_size(20);
    for layers in [1, 10, 100, 1000] {
        let stack = stack(layers);
        group.bench_with_input(BenchmarkId::from_parameter(layers), &stack, |b, stack| {
            b.iter(|| build(black_box(&layer_inputs(stack))).expect("build"))
        });
    }
    group.finish();
}

fn index_lookup(c: &mut Criterion) {
    // Build every index first, so that heap state is the same for all of them when measured.
    let indexes: Vec<(usize, Index<Vec<u8>>)> = [1, 10, 100, 1000]
        .into_iter()
        .map(|layers| {
            (
                layers,
                Index::open(build(&layer_inputs(&stack(layers))).expect("build")).expect("open"),
            )
        })
        .collect();
    let path = file_path(1234);
    let path: Vec<&str> = path.split('/').collect();
    let mut group = c.benchmark_group("index_lookup_depth_5");
    for (layers, index) in &indexes {
        group.bench_with_input(BenchmarkId::from_parameter(layers), index, |b, index| {
            b.iter(|| {
                let ino = path.iter().try_fold(Ino::ROOT, |ino, name| {
                    index.lookup(ino, black_box(name.as_bytes()))
                });
                black_box(ino.and_then(|ino| index.inode(ino)).expect("found").size())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, tar_parse, store_put, index_build, index_lookup);
criterion_main!(benches);
