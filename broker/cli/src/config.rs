//! `quiver config topic|broker`: the configuration reference, from the code.

use quiver_server::config::reference;

use crate::output::say;

#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// Which reference: `topic` (configs of a topic) or `broker` (keys of the TOML file
    /// `quiver serve --config` reads); both when omitted.
    #[arg(value_enum)]
    pub which: Option<Which>,
    /// Print the whole reference as Markdown (the page docs/configuration.md).
    #[arg(long, conflicts_with = "which")]
    pub markdown: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Which {
    Topic,
    Broker,
}

pub fn run(args: &ConfigArgs) -> anyhow::Result<()> {
    if args.markdown {
        say!("{}", reference::markdown().trim_end());
        return Ok(());
    }
    let topic = || {
        format!(
            "# Topic configs\n\n{}",
            reference::text(&reference::topic_keys())
        )
    };
    let broker = || {
        format!(
            "# Broker configs (TOML)\n\n{}",
            reference::text(&reference::broker_keys())
        )
    };
    let out = match args.which {
        Some(Which::Topic) => topic(),
        Some(Which::Broker) => broker(),
        None => format!("{}\n{}", topic(), broker()),
    };
    say!("{}", out.trim_end());
    Ok(())
}
