//! Integration tests: the built `snap` binary on real images and on archives built in code.
//! Run as root on Linux; the test images come from `tools/make-test-images`.

mod commands;
mod commit;
mod conformance;
mod crash;
mod ctrd;
mod hostile;
mod hostile_container;
mod import;
mod mount;
mod snapshotter;
mod store_security;
mod util;
