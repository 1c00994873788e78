//! Dev profiles: how `quiver dev` tells the other commands on the same machine where its
//! broker is and which certificate to trust.
//!
//! Each running `quiver dev` writes one profile, `$QUIVER_HOME/profiles/NAME.json`
//! (`~/.quiver` without `QUIVER_HOME`), named by `--profile` or after its data directory,
//! with the broker's address, its certificate, its data directory and its process id.
//! The file stays when the broker stops (the process id tells that it is gone), and the
//! next `quiver dev` on the same data directory replaces it. So two dev brokers never
//! replace each other's profile, and a command aimed at a broker that is gone says so
//! at once instead of timing out.
//!
//! A command picks its profile by `--profile NAME` (or `QUIVER_PROFILE`); without one it
//! takes the only running dev broker, or, when several run, the one whose data directory
//! is `./quiver-data`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What one `quiver dev` leaves for the commands on the same machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevProfile {
    /// The profile's name: its file is `NAME.json`.
    #[serde(skip)]
    pub name: String,
    /// `quic://host:port`.
    pub broker: String,
    /// The broker's self-signed certificate, to trust.
    pub ca: PathBuf,
    /// The broker's data directory, absolute.
    pub data_dir: PathBuf,
    /// The process serving it.
    pub pid: u32,
}

impl DevProfile {
    /// Whether the process that wrote the profile still runs.
    pub fn is_running(&self) -> bool {
        process_exists(self.pid)
    }
}

/// Why no profile could be chosen.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProfileError {
    #[error("neither QUIVER_HOME nor HOME is set, so there is no place for dev profiles")]
    NoHome,
    #[error("no dev profile named '{0}' (profiles: {1}); `quiver dev --profile {0}` creates it")]
    Unknown(String, String),
    #[error(
        "the dev broker of profile '{name}' (pid {pid}, data {data}) is not running any more; start it again with `quiver dev --data {data}`, or pass --broker and --ca"
    )]
    Gone {
        name: String,
        pid: u32,
        data: String,
    },
    #[error(
        "several dev brokers are running ({0}); pick one with --profile NAME (or QUIVER_PROFILE)"
    )]
    Ambiguous(String),
    #[error(
        "profile '{name}' belongs to the dev broker of {other} (pid {pid}), which is running; pass --profile NAME to run a second one beside it"
    )]
    Taken {
        name: String,
        other: String,
        pid: u32,
    },
    #[error("cannot write the dev profile {path}: {reason}")]
    Write { path: String, reason: String },
}

/// `$QUIVER_HOME`, or `~/.quiver`.
pub fn home() -> Result<PathBuf, ProfileError> {
    std::env::var_os("QUIVER_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".quiver")))
        .ok_or(ProfileError::NoHome)
}

fn dir() -> Result<PathBuf, ProfileError> {
    Ok(home()?.join("profiles"))
}

/// The name a `quiver dev` on `data_dir` takes without `--profile`: the directory's
/// own name, cleaned to letters, digits, `-`, `_` and `.`.
pub fn default_name(data_dir: &Path) -> String {
    let name: String = data_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() || name.starts_with('.') {
        format!("dev{name}")
    } else {
        name
    }
}

/// Every profile on this machine, sorted by name; unreadable files are skipped.
pub fn list() -> Result<Vec<DevProfile>, ProfileError> {
    Ok(list_in(&dir()?))
}

fn list_in(dir: &Path) -> Vec<DevProfile> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<DevProfile> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let path = e.path();
            let name = path
                .file_name()?
                .to_str()?
                .strip_suffix(".json")?
                .to_owned();
            let mut profile: DevProfile =
                serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
            profile.name = name;
            Some(profile)
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The profile a client command uses: `name` if given, else the one running dev broker
/// (or, among several, the one on `./quiver-data`). `Ok(None)` when there is no profile
/// at all.
pub fn choose(name: Option<&str>) -> Result<Option<DevProfile>, ProfileError> {
    let here = std::path::absolute("quiver-data").ok();
    choose_in(&dir()?, name, here.as_ref())
}

fn choose_in(
    dir: &Path,
    name: Option<&str>,
    here: Option<&PathBuf>,
) -> Result<Option<DevProfile>, ProfileError> {
    let all = list_in(dir);
    let gone = |p: &DevProfile| ProfileError::Gone {
        name: p.name.clone(),
        pid: p.pid,
        data: p.data_dir.display().to_string(),
    };
    if let Some(name) = name {
        let found = all.iter().find(|p| p.name == name).ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(|p| p.name.as_str()).collect();
            let names = if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            };
            ProfileError::Unknown(name.to_owned(), names)
        })?;
        return if found.is_running() {
            Ok(Some(found.clone()))
        } else {
            Err(gone(found))
        };
    }
    let running: Vec<&DevProfile> = all.iter().filter(|p| p.is_running()).collect();
    match running.as_slice() {
        [one] => Ok(Some((*one).clone())),
        // Only dead brokers: say which, rather than dial an address nobody serves.
        [] => match all
            .iter()
            .find(|p| Some(&p.data_dir) == here)
            .or(all.first())
        {
            Some(dead) => Err(gone(dead)),
            None => Ok(None),
        },
        several => {
            if let Some(p) = several.iter().find(|p| Some(&p.data_dir) == here) {
                return Ok(Some((*p).clone()));
            }
            let names: Vec<String> = several
                .iter()
                .map(|p| format!("{}: {}", p.name, p.broker))
                .collect();
            Err(ProfileError::Ambiguous(names.join(", ")))
        }
    }
}

/// Writes `profile` as `NAME.json`, unless a running dev broker on another data
/// directory holds that name. Returns the file's path.
pub fn write(profile: &DevProfile) -> Result<PathBuf, ProfileError> {
    write_in(&dir()?, profile)
}

fn write_in(dir: &Path, profile: &DevProfile) -> Result<PathBuf, ProfileError> {
    let path = dir.join(format!("{}.json", profile.name));
    if let Some(other) = list_in(dir).into_iter().find(|p| p.name == profile.name)
        && other.data_dir != profile.data_dir
        && other.pid != profile.pid
        && other.is_running()
    {
        return Err(ProfileError::Taken {
            name: profile.name.clone(),
            other: other.data_dir.display().to_string(),
            pid: other.pid,
        });
    }
    let failed = |e: std::io::Error| ProfileError::Write {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(failed)?;
    let text = serde_json::to_vec_pretty(profile).map_err(|e| failed(std::io::Error::other(e)))?;
    std::fs::write(&path, text).map_err(failed)?;
    Ok(path)
}

/// Whether a process with this id exists (Linux: `/proc/<pid>`; elsewhere assumed).
fn process_exists(pid: u32) -> bool {
    let proc = Path::new("/proc");
    if !proc.is_dir() {
        return true;
    }
    proc.join(pid.to_string()).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_are_file_names() {
        assert_eq!(default_name(Path::new("/a/b/quiver-data")), "quiver-data");
        assert_eq!(default_name(Path::new("/a/my data")), "my_data");
        assert_eq!(default_name(Path::new("/")), "dev");
        assert_eq!(default_name(Path::new("/x/.hidden")), "dev.hidden");
    }

    fn profile(name: &str, data: &str, pid: u32) -> DevProfile {
        DevProfile {
            name: name.into(),
            broker: format!("quic://127.0.0.1:{}", 7000 + pid % 1000),
            ca: PathBuf::from(format!("{data}/tls/cert.pem")),
            data_dir: PathBuf::from(data),
            pid,
        }
    }

    const DEAD: u32 = u32::MAX - 1;

    #[test]
    fn profiles_are_chosen_by_name_by_liveness_or_by_the_local_data_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dir = dir.path();
        let me = std::process::id();
        assert_eq!(choose_in(dir, None, None), Ok(None));

        // One dead broker: a clear error naming it, not a connection timeout.
        write_in(dir, &profile("old", "/d/old", DEAD)).expect("write");
        let err = choose_in(dir, None, None).expect_err("dead");
        assert!(
            matches!(&err, ProfileError::Gone { name, .. } if name == "old"),
            "{err}"
        );
        assert!(
            err.to_string().contains("quiver dev --data /d/old"),
            "{err}"
        );

        // A running one is taken over dead ones.
        write_in(dir, &profile("a", "/d/a", me)).expect("write");
        assert_eq!(
            choose_in(dir, None, None).expect("one").map(|p| p.name),
            Some("a".into())
        );

        // Two running: ambiguous, unless one is ./quiver-data or a name is given.
        write_in(dir, &profile("b", "/d/quiver-data", me)).expect("write");
        let err = choose_in(dir, None, None).expect_err("two");
        assert!(matches!(err, ProfileError::Ambiguous(_)), "{err}");
        let here = PathBuf::from("/d/quiver-data");
        assert_eq!(
            choose_in(dir, None, Some(&here))
                .expect("local")
                .map(|p| p.name),
            Some("b".into())
        );
        assert_eq!(
            choose_in(dir, Some("a"), None)
                .expect("named")
                .map(|p| p.name),
            Some("a".into())
        );
        assert!(matches!(
            choose_in(dir, Some("old"), None),
            Err(ProfileError::Gone { .. })
        ));
        assert!(matches!(
            choose_in(dir, Some("zzz"), None),
            Err(ProfileError::Unknown(..))
        ));
    }

    #[test]
    fn a_running_brokers_profile_is_not_replaced_by_another_data_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dir = dir.path();
        // The running owner is this test process; the newcomer claims another pid.
        write_in(
            dir,
            &profile("quiver-data", "/one/quiver-data", std::process::id()),
        )
        .expect("write");
        let err =
            write_in(dir, &profile("quiver-data", "/two/quiver-data", DEAD)).expect_err("taken");
        assert!(matches!(err, ProfileError::Taken { .. }), "{err}");
        // The same data directory (a restart) or a dead owner may take the name.
        write_in(dir, &profile("quiver-data", "/one/quiver-data", DEAD)).expect("restart");
        write_in(dir, &profile("quiver-data", "/two/quiver-data", 1)).expect("owner dead");
    }

    #[test]
    fn this_process_exists_and_a_huge_pid_does_not() {
        assert!(process_exists(std::process::id()));
        assert!(!process_exists(u32::MAX - 1));
    }
}
