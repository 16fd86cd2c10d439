//! The `entitled` binary: parses the command line and hands over to the library.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use entitled::config::{Cli, Command, LogFormat};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = match LogFormat::from_env() {
        Ok(format) => format,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let _log = entitled::init_logging(format);
    let result = match cli.command {
        Command::Serve(args) => entitled::serve(args).await,
        Command::Migrate(args) => entitled::migrate(args).await,
        Command::Rebuild(args) => entitled::rebuild(args).await,
        Command::RotateSigningKey(args) => entitled::rotate_signing_key(args).await,
        Command::Openapi => {
            print!("{}", entitled::http::openapi::json());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
