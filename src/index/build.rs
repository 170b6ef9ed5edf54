//! Merging layers into one tree and encoding it.

use super::format::Encoder;
use super::tree::{Node, Tree};
use super::{Index, IndexError, NodeKind};
use crate::model::{Entry, EntryPath, Ino, Kind, LayerId, Meta};
use std::collections::{BTreeMap, HashMap};

/// One layer of the stack to merge, bottom first.
pub struct LayerInput<'a> {
    pub id: LayerId,
    pub entries: &'a [Entry],
}

/// Merges `layers` (bottom first) and encodes the flattened index.
pub fn build(layers: &[LayerInput<'_>]) -> Result<Vec<u8>, IndexError> {
    let tree = merge(layers)?;
    Encoder::encode(&tree)
}

/// Merges `layers` on top of the flattened index `parent` (a commit's new layer on its image)
/// and encodes the result: the same bytes as [`build`] of all the layers, without reading the
/// parent's layers again.
pub fn build_on<B: AsRef<[u8]>>(
    parent: &Index<B>,
    layers: &[LayerInput<'_>],
) -> Result<Vec<u8>, IndexError> {
    let mut tree = Tree::from_index(parent)?;
    tree.apply(layers)?;
    Encoder::encode(&tree)
}

fn root_meta() -> Meta {
    Meta {
        mode: 0o755,
        ..Meta::default()
    }
}

pub(super) fn merge(layers: &[LayerInput<'_>]) -> Result<Tree, IndexError> {
    let mut tree = Tree {
        nodes: vec![Node {
            kind: Kind::Dir,
            meta: root_meta(),
            children: BTreeMap::new(),
        }],
    };
    tree.apply(layers)?;
    Ok(tree)
}

impl Tree {
    /// The tree an encoded index describes; hardlinked names share one node again.
    fn from_index<B: AsRef<[u8]>>(index: &Index<B>) -> Result<Tree, IndexError> {
        let node_of = |ino: Ino| -> Result<Node, IndexError> {
            let corrupt = || IndexError::Corrupt(format!("inode {ino}"));
            let inode = index.inode(ino).ok_or_else(corrupt)?;
            let kind = match inode.kind {
                NodeKind::Dir { .. } => Kind::Dir,
                NodeKind::File { digest, size } => Kind::File { digest, size },
                NodeKind::Symlink { target } => Kind::Symlink {
                    target: target.to_vec(),
                },
                NodeKind::CharDevice { major, minor } => Kind::CharDevice { major, minor },
                NodeKind::BlockDevice { major, minor } => Kind::BlockDevice { major, minor },
                NodeKind::Fifo => Kind::Fifo,
            };
            let meta = index.meta(&inode)?;
            Ok(Node {
                kind,
                meta,
                children: BTreeMap::new(),
            })
        };
        let mut tree = Tree {
            nodes: vec![node_of(Ino::ROOT)?],
        };
        let mut ids: HashMap<Ino, usize> = HashMap::from([(Ino::ROOT, 0)]);
        let mut dirs = vec![Ino::ROOT];
        while let Some(dir) = dirs.pop() {
            let parent = ids[&dir];
            let children = index
                .children(dir)
                .ok_or_else(|| IndexError::Corrupt(format!("directory inode {dir}")))?;
            for (name, ino) in children {
                let id = match ids.get(&ino) {
                    Some(&id) => id,
                    None => {
                        let node = node_of(ino)?;
                        if matches!(node.kind, Kind::Dir) {
                            dirs.push(ino);
                        }
                        let id = tree.push(node);
                        ids.insert(ino, id);
                        id
                    }
                };
                tree.nodes[parent].children.insert(name.to_vec(), id);
            }
        }
        Ok(tree)
    }

    /// Merges `layers` (bottom first) onto the tree.
    fn apply(&mut self, layers: &[LayerInput<'_>]) -> Result<(), IndexError> {
        let tree = self;
        for layer in layers {
            // Whiteouts and opaque markers hide what the layers below put there, never what this
            // layer adds, so they go first.
            for entry in layer.entries {
                match entry.kind {
                    Kind::Whiteout => tree.remove(&entry.path),
                    Kind::Opaque => tree.clear_dir(&entry.path),
                    _ => {}
                }
            }
            for entry in layer.entries {
                if !matches!(entry.kind, Kind::Whiteout | Kind::Opaque) {
                    tree.add(layer.id, entry)?;
                }
            }
        }
        Ok(())
    }

    /// The node id of the directory at `path`, if it exists and is a directory.
    fn find_dir(&self, path: &EntryPath) -> Option<usize> {
        let mut id = 0;
        for component in path.components() {
            id = *self.nodes[id].children.get(component)?;
            if !matches!(self.nodes[id].kind, Kind::Dir) {
                return None;
            }
        }
        Some(id)
    }

    fn remove(&mut self, path: &EntryPath) {
        if let Some((parent, name)) = path.split_last()
            && let Some(dir) = self.find_dir(&parent)
        {
            self.nodes[dir].children.remove(name);
        }
    }

    fn clear_dir(&mut self, path: &EntryPath) {
        if let Some(dir) = self.find_dir(path) {
            self.nodes[dir].children.clear();
        }
    }

    /// The directory that will hold `path`, creating missing parents as plain directories.
    fn parent_dir(&mut self, layer: LayerId, path: &EntryPath) -> Result<usize, IndexError> {
        let mut id = 0;
        let mut walked = EntryPath::root();
        let parent = path.split_last().map(|(p, _)| p).unwrap_or_default();
        for component in parent.components() {
            walked = walked.join(component);
            id = match self.nodes[id].children.get(component) {
                Some(&child) => match self.nodes[child].kind {
                    Kind::Dir => child,
                    Kind::Symlink { .. } => {
                        return Err(IndexError::ThroughSymlink {
                            layer,
                            path: path.clone(),
                            via: walked,
                        });
                    }
                    _ => {
                        return Err(IndexError::ParentNotDir {
                            layer,
                            path: path.clone(),
                            parent: walked,
                        });
                    }
                },
                None => {
                    let child = self.push(Node {
                        kind: Kind::Dir,
                        meta: root_meta(),
                        children: BTreeMap::new(),
                    });
                    self.nodes[id].children.insert(component.to_vec(), child);
                    child
                }
            };
        }
        Ok(id)
    }

    fn push(&mut self, node: Node) -> usize {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    fn add(&mut self, layer: LayerId, entry: &Entry) -> Result<(), IndexError> {
        let Some((_, name)) = entry.path.split_last() else {
            return match entry.kind {
                Kind::Dir => {
                    self.nodes[0].meta = entry.meta.clone();
                    Ok(())
                }
                _ => Err(IndexError::RootNotDir {
                    layer,
                    path: entry.path.clone(),
                    kind: entry.kind.name(),
                }),
            };
        };
        let dir = self.parent_dir(layer, &entry.path)?;
        let existing = self.nodes[dir].children.get(name).copied();
        let node = match &entry.kind {
            Kind::Dir => {
                if let Some(id) = existing.filter(|&id| matches!(self.nodes[id].kind, Kind::Dir)) {
                    self.nodes[id].meta = entry.meta.clone();
                    return Ok(());
                }
                self.push(Node {
                    kind: Kind::Dir,
                    meta: entry.meta.clone(),
                    children: BTreeMap::new(),
                })
            }
            Kind::Hardlink { target } => {
                let bad = || IndexError::BadHardlink {
                    layer,
                    path: entry.path.clone(),
                    target: target.clone(),
                };
                let (target_parent, target_name) = target.split_last().ok_or_else(bad)?;
                let target_dir = self.find_dir(&target_parent).ok_or_else(bad)?;
                let id = *self.nodes[target_dir]
                    .children
                    .get(target_name)
                    .ok_or_else(bad)?;
                if matches!(self.nodes[id].kind, Kind::Dir) {
                    return Err(bad());
                }
                id
            }
            kind => self.push(Node {
                kind: kind.clone(),
                meta: entry.meta.clone(),
                children: BTreeMap::new(),
            }),
        };
        self.nodes[dir].children.insert(name.to_vec(), node);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{Index, NodeKind};
    use crate::model::{Digest, Ino, Xattr};

    fn p(s: &str) -> EntryPath {
        EntryPath::parse(s.as_bytes()).unwrap()
    }
    fn e(path: &str, kind: Kind) -> Entry {
        Entry {
            path: p(path),
            kind,
            meta: Meta {
                mode: 0o644,
                ..Meta::default()
            },
        }
    }
    fn file(path: &str, content: &str) -> Entry {
        e(
            path,
            Kind::File {
                digest: Digest::of(content.as_bytes()),
                size: content.len() as u64,
            },
        )
    }
    fn id(n: u8) -> LayerId {
        LayerId(Digest::of(&[n]))
    }
    fn inputs(layers: &[Vec<Entry>]) -> Vec<LayerInput<'_>> {
        layers
            .iter()
            .enumerate()
            .map(|(i, l)| LayerInput {
                id: id(i as u8),
                entries: l,
            })
            .collect()
    }
    fn index(layers: &[Vec<Entry>]) -> Index<Vec<u8>> {
        Index::open(build(&inputs(layers)).unwrap()).unwrap()
    }
    fn resolve(idx: &Index<Vec<u8>>, path: &str) -> Option<Ino> {
        p(path)
            .components()
            .try_fold(Ino::ROOT, |ino, name| idx.lookup(ino, name))
    }
    fn names(idx: &Index<Vec<u8>>, path: &str) -> Vec<String> {
        let ino = resolve(idx, path).unwrap();
        idx.children(ino)
            .unwrap()
            .map(|(n, _)| String::from_utf8_lossy(n).into_owned())
            .collect()
    }

    #[test]
    fn building_on_a_parent_index_equals_building_from_scratch() {
        let mut xattr_file = file("etc/conf", "c");
        xattr_file.meta.xattrs = vec![Xattr {
            name: b"user.k".to_vec(),
            value: b"v".to_vec(),
        }];
        let layers = vec![
            vec![
                e("", Kind::Dir),
                e("etc", Kind::Dir),
                xattr_file,
                file("bin/a", "a"),
                e("bin/b", Kind::Hardlink { target: p("bin/a") }),
                e(
                    "bin/s",
                    Kind::Symlink {
                        target: b"a".to_vec(),
                    },
                ),
                e("dev/null", Kind::CharDevice { major: 1, minor: 3 }),
                e("run/fifo", Kind::Fifo),
                file("old/x", "x"),
            ],
            vec![
                e("old", Kind::Whiteout),
                file("bin/c", "c"),
                e("etc", Kind::Opaque),
                file("etc/new", "n"),
            ],
        ];
        let whole = build(&inputs(&layers)).unwrap();
        let parent = index(&layers[..1]);
        let top = LayerInput {
            id: id(1),
            entries: &layers[1],
        };
        assert_eq!(build_on(&parent, &[top]).unwrap(), whole);
    }

    #[test]
    fn upper_layers_win_and_whiteouts_hide() {
        let idx = index(&[
            vec![
                e("a", Kind::Dir),
                file("a/x", "1"),
                file("a/y", "2"),
                e("b", Kind::Dir),
                file("b/z", "3"),
            ],
            vec![
                file("a/x", "new"),
                e("a/y", Kind::Whiteout),
                e("b", Kind::Whiteout),
                e("b", Kind::Dir),
                file("b/w", "4"),
            ],
        ]);
        assert_eq!(names(&idx, "a"), ["x"]);
        assert_eq!(
            names(&idx, "b"),
            ["w"],
            "a whiteout of b hides the lower b, not this layer's b"
        );
        let x = idx.inode(resolve(&idx, "a/x").unwrap()).unwrap();
        assert_eq!(
            x.kind,
            NodeKind::File {
                digest: Digest::of(b"new"),
                size: 3
            }
        );
    }

    #[test]
    fn opaque_dirs_hide_the_lower_tree() {
        let idx = index(&[
            vec![
                e("d", Kind::Dir),
                file("d/old", "1"),
                e("d/sub", Kind::Dir),
                file("d/sub/f", "2"),
            ],
            vec![e("d", Kind::Dir), e("d", Kind::Opaque), file("d/new", "3")],
        ]);
        assert_eq!(names(&idx, "d"), ["new"]);
    }

    #[test]
    fn hardlinks_share_one_inode() {
        let idx = index(&[vec![
            file("a", "x"),
            e("b", Kind::Hardlink { target: p("a") }),
            file("c", "x"),
        ]]);
        let (a, b, c) = (
            resolve(&idx, "a").unwrap(),
            resolve(&idx, "b").unwrap(),
            resolve(&idx, "c").unwrap(),
        );
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(idx.inode(a).unwrap().nlink, 2);
        assert_eq!(idx.inode(c).unwrap().nlink, 1);
    }

    #[test]
    fn replacing_a_dir_with_a_file_drops_its_tree() {
        let idx = index(&[
            vec![e("d", Kind::Dir), file("d/f", "1")],
            vec![file("d", "2")],
        ]);
        let d = idx.inode(resolve(&idx, "d").unwrap()).unwrap();
        assert!(matches!(d.kind, NodeKind::File { .. }));
        assert_eq!(idx.len(), 2);
    }

    #[test]
    fn missing_parents_are_created() {
        let idx = index(&[vec![file("x/y/z", "1")]]);
        assert!(resolve(&idx, "x/y/z").is_some());
        assert_eq!(idx.inode(resolve(&idx, "x").unwrap()).unwrap().nlink, 3);
    }

    #[test]
    fn refuses_paths_through_symlinks() {
        let layers = [
            vec![e(
                "etc",
                Kind::Symlink {
                    target: b"/host/etc".to_vec(),
                },
            )],
            vec![file("etc/passwd", "x")],
        ];
        let err = build(&inputs(&layers)).unwrap_err();
        assert!(matches!(err, IndexError::ThroughSymlink { .. }), "{err}");
        assert!(err.to_string().contains("/etc/passwd"));
    }

    #[test]
    fn inode_numbers_are_stable() {
        let layers = vec![vec![e("a", Kind::Dir), file("a/b", "1"), file("c", "2")]];
        let one = index(&layers);
        let two = index(&layers);
        assert_eq!(resolve(&one, "a/b"), resolve(&two, "a/b"));
        assert_eq!(resolve(&one, ""), Some(Ino::ROOT));
    }
}
