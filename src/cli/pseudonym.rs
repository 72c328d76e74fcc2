//! `scrubd pseudonym VALUE`: the token the `hash` action gives a value, for `search --pseudonym`.

use std::path::Path;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct PseudonymArgs {
    /// The value (an email, a name, ...). Prefer stdin (`-`) so it stays out of the shell history.
    pub value: String,
}

pub fn run(args: &PseudonymArgs, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let cfg = crate::config::load(config)?;
    let value = if args.value == "-" {
        let mut s = String::new();
        std::io::stdin().read_line(&mut s)?;
        s.trim_end_matches(['\n', '\r']).to_owned()
    } else {
        args.value.clone()
    };
    match cfg.scrubber.pseudonym(&value) {
        Some(token) => {
            println!("{token}");
            Ok(ExitCode::SUCCESS)
        }
        None => anyhow::bail!("no pseudonym key configured ([scrub] pseudonym_key_file or pseudonym_key_credential)"),
    }
}
