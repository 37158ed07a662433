use clap::Parser;

fn main() {
    basin::compute::keep_freed_host_memory();
    let cli = basin::cli::Cli::parse();
    if let Err(e) = basin::cli::run(&cli) {
        // One line naming the file and the problem.
        eprintln!("error: {}", basin::cli::error_line(&e));
        std::process::exit(1);
    }
}
