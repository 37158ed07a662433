//! `basin download org/name[@revision]`: fetch a Hugging Face repo into the local hub cache (the
//! files Basin reads) and print its snapshot folder.

use clap::Args;

#[derive(Args, Debug)]
pub struct DownloadArgs {
    /// A Hugging Face repo id, `org/name` or `org/name@revision` (branch, tag or commit).
    pub repo: String,
}

pub fn run(args: &DownloadArgs) -> anyhow::Result<()> {
    if crate::checkpoint::hub::parse_repo_id(&args.repo).is_none() {
        anyhow::bail!(
            "`{}` is not a Hugging Face repo id (org/name or org/name@revision)",
            args.repo
        );
    }
    let snapshot = crate::checkpoint::hub::resolve(&args.repo).map_err(anyhow::Error::msg)?;
    println!("{}", snapshot.display());
    Ok(())
}
