fn main() {
    snapfs::cli::main()
}
