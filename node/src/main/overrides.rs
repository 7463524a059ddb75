//! The flags and environment variables that override a node's configuration file.

use node::config::{OVERRIDABLE, Overridable};

/// The overrides given as flags or environment variables, one clap argument per entry of
/// [`OVERRIDABLE`], declared there once.
#[derive(Debug, Default)]
pub(crate) struct Overrides(pub(crate) Vec<(Overridable, String)>);

impl clap::FromArgMatches for Overrides {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Overrides, clap::Error> {
        Ok(Overrides(
            OVERRIDABLE
                .iter()
                .filter_map(|setting| {
                    let value = matches.get_one::<String>(setting.path)?;
                    Some((*setting, value.clone()))
                })
                .collect(),
        ))
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Overrides::from_arg_matches(matches)?;
        Ok(())
    }
}

impl clap::Args for Overrides {
    fn augment_args(command: clap::Command) -> clap::Command {
        OVERRIDABLE.iter().fold(
            command.next_help_heading("Overrides of the configuration file"),
            |command, setting| {
                command.arg(
                    clap::Arg::new(setting.path)
                        .long(setting.flag())
                        .env(setting.env())
                        .value_name(setting.name().to_ascii_uppercase())
                        .help(setting.help),
                )
            },
        )
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        Overrides::augment_args(command)
    }
}
