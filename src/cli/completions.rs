//! `scale completions bash|zsh|fish` and `scale man`: generated from the command-line
//! definition itself (clap_complete, clap_mangen), so they never drift from it.

use clap::CommandFactory;

use super::Cli;

/// Arguments of `scale completions`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Shells we write completions for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// Prints the completion script on stdout (`scale completions bash > /etc/bash_completion.d/scale`).
pub fn run(args: Args) -> anyhow::Result<u8> {
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut Cli::command(), "scale", &mut std::io::stdout());
    Ok(0)
}

/// Prints the man page (roff) on stdout (`scale man > scale.1; man ./scale.1`).
pub fn man() -> anyhow::Result<u8> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    use std::io::Write;
    std::io::stdout().write_all(&out)?;
    Ok(0)
}
