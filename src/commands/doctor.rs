//! `paragon-admin doctor`: glue from the options to `diagnose::doctor`, the printed hops and
//! the exit status of the first hop that failed.

use std::time::Duration;

use crate::cli::{DoctorArgs, Globals};
use crate::diagnose::doctor::{self, Diagnosis};
use crate::exit::Error;
use crate::output::Format;

pub async fn run(g: &Globals, args: &DoctorArgs) -> Result<u8, Error> {
    let options = doctor::Options {
        timeout: Duration::from_secs(args.timeout),
        no_agent: g.no_agent,
    };
    let diagnosis = match super::resolve_profile(g) {
        Ok(profile) => doctor::run(&profile, options).await,
        Err(e) => Diagnosis::config_failed(g.profile.as_deref(), &e),
    };
    match g.output {
        Format::Json => crate::output::print_json(&diagnosis)?,
        Format::Table => {
            use std::io::Write as _;
            let mut out = std::io::stdout().lock();
            out.write_all(diagnosis.render().as_bytes())?;
            out.flush()?;
        }
    }
    Ok(diagnosis.exit_status())
}
