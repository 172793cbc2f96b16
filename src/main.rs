//! The `domiso` binary: everything lives in the library; this maps the outcome to an exit
//! code and installs the allocator (see `huge_pages`).

#[global_allocator]
static ALLOC: domiso::huge_pages::HugePageAlloc = domiso::huge_pages::HugePageAlloc;

fn main() -> std::process::ExitCode {
    domiso::cli::main()
}
