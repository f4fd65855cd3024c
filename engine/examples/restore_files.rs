//! Restore the file components of a GitLab backup archive into a root with
//! `files::restore_components`, for `bench/files.sh`:
//! `restore_files ARCHIVE ROOT [COMPONENT ...]` (all components when none are named).
//! Prints one JSON report per component to stdout.

use std::path::Path;
use std::process::ExitCode;

use rewind_engine::detect::InstallKind;
use rewind_engine::files::{self, OwnerPolicy, RestoreOptions};
use rewind_engine::progress::NullSink;
use rewind_engine::root::HostRoot;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: restore_files ARCHIVE ROOT [COMPONENT ...]");
        return ExitCode::from(2);
    }
    let archive = Path::new(&args[0]);
    let root = HostRoot::new(&args[1]);
    let members = match files::archive_members(archive) {
        Ok(m) => m.into_iter().map(|m| m.name).collect::<Vec<_>>(),
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let mut comps = files::select_components(&members, &[], &[], InstallKind::Omnibus);
    if args.len() > 2 {
        comps.retain(|c| args[2..].contains(&c.name));
    }
    let opts = RestoreOptions {
        owner: OwnerPolicy::Current,
        epoch: None,
        cancel: None,
    };
    match files::restore_components(
        archive,
        &comps,
        &root,
        Path::new("/var/opt/gitlab/backups"),
        &opts,
        &NullSink,
        None,
    ) {
        Ok(reports) => {
            for r in reports {
                println!("{}", serde_json::to_string(&r).unwrap_or_default());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
