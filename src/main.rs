use clap::Parser;

fn main() {
    let cli = basin::cli::Cli::parse();
    if let Err(e) = basin::cli::run(&cli) {
        // One line naming the file and the problem (anyhow's `{:#}` joins the context chain).
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
