//! omp's and pi's sessions directories on disk: where they are (omp's, each omp profile's,
//! pi's), which files are sessions, what their names say, and how subagent sessions hang off
//! their parent's file. Metadata only: no session file is opened here (pi's settings file
//! aside, for its `sessionDir`).
//!
//! Layout (omp 18): `<sessions>/<cwd dir>/<2026-08-23T09-14-02-117Z>_<session id>.jsonl`, and
//! beside it a directory of the same stem holding artifacts and subagent sessions
//! `<agent id>.jsonl` (whose own subagents go into `<agent id>/` in turn).

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use anyhow::{Result, bail};

use crate::model::Millis;

/// Extension of session files.
const SESSION_EXT: &str = "jsonl";
/// omp's config directory under the home directory, unless `PI_CONFIG_DIR` renames it.
const DEFAULT_CONFIG_DIR: &str = ".omp";
/// pi's (`@mariozechner/pi-coding-agent` config.js `CONFIG_DIR_NAME`).
const PI_CONFIG_DIR: &str = ".pi";
/// What `--profile` takes to mean every omp profile.
pub const ALL_PROFILES: &str = "all";
/// omp's name for its directory under `$XDG_DATA_HOME`.
const XDG_APP_NAME: &str = "omp";
/// Deepest directory nesting walked (a guard against pathological trees, not a real limit:
/// omp's layout is three levels deep plus one per subagent generation).
const MAX_DEPTH: usize = 32;

/// omp's sessions directory, resolved the way omp 18 does for the default profile:
/// `PI_CODING_AGENT_DIR/sessions` when set; else `$XDG_DATA_HOME/omp/sessions` when that
/// `omp` directory exists (omp's opt-in XDG layout); else
/// `~/<PI_CONFIG_DIR or .omp>/agent/sessions`.
fn default_dir_from(var: &dyn Fn(&str) -> Option<std::ffi::OsString>) -> Result<PathBuf> {
    let env = |k: &str| var(k).filter(|v| !v.is_empty());
    if let Some(agent) = env("PI_CODING_AGENT_DIR") {
        return Ok(PathBuf::from(agent).join("sessions"));
    }
    if let Some(xdg) = env("XDG_DATA_HOME").map(PathBuf::from)
        && xdg.is_absolute()
        && xdg.join(XDG_APP_NAME).is_dir()
    {
        return Ok(xdg.join(XDG_APP_NAME).join("sessions"));
    }
    let Some(home) = env("HOME").map(PathBuf::from) else {
        bail!(
            "cannot find omp's sessions directory without HOME: give the directory as an argument"
        )
    };
    let config = env("PI_CONFIG_DIR").unwrap_or_else(|| DEFAULT_CONFIG_DIR.into());
    Ok(home.join(config).join("agent").join("sessions"))
}

/// Where to look for sessions when no directory is given: omp's (the profile in
/// `OMP_PROFILE` / `PI_PROFILE`, or `profile`: a name, or `all` for the default and every
/// profile), then pi's. Only directories that exist, each once; when none does, omp's
/// default (for `watch` to wait on, and for the error to name).
pub fn default_dirs(profile: Option<&str>) -> Result<Vec<PathBuf>> {
    default_dirs_from(profile, &|k| std::env::var_os(k))
}

type Vars<'a> = &'a dyn Fn(&str) -> Option<std::ffi::OsString>;

fn default_dirs_from(profile: Option<&str>, var: Vars<'_>) -> Result<Vec<PathBuf>> {
    let env = |k: &str| var(k).filter(|v| !v.is_empty());
    let profile = profile
        .map(str::to_string)
        .or_else(|| {
            env("OMP_PROFILE")
                .or_else(|| env("PI_PROFILE"))
                .map(|p| p.to_string_lossy().into_owned())
        })
        .filter(|p| !p.trim().is_empty());
    let omp_default = default_dir_from(var)?;
    let mut candidates = Vec::new();
    match profile.as_deref() {
        None => candidates.push(omp_default.clone()),
        Some(ALL_PROFILES) => {
            candidates.push(omp_default.clone());
            if let Some(root) = omp_config_root(var) {
                let mut names: Vec<PathBuf> = fs::read_dir(root.join("profiles"))
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path().join("agent").join("sessions"))
                    .collect();
                names.sort();
                candidates.extend(names);
            }
        }
        Some(name) => {
            if name.contains(['/', '\\']) || name == ".." || name == "." {
                bail!("--profile / OMP_PROFILE: not a profile name: {name:?}");
            }
            if let Some(root) = omp_config_root(var) {
                candidates.push(
                    root.join("profiles")
                        .join(name)
                        .join("agent")
                        .join("sessions"),
                );
            }
        }
    }
    candidates.extend(pi_dir_from(var));
    let mut seen = HashSet::new();
    let found: Vec<PathBuf> = candidates
        .into_iter()
        .filter(|d| d.is_dir() && seen.insert(d.clone()))
        .collect();
    Ok(if found.is_empty() {
        vec![omp_default]
    } else {
        found
    })
}

/// `~/<PI_CONFIG_DIR or .omp>`, where omp keeps its profiles.
fn omp_config_root(var: Vars<'_>) -> Option<PathBuf> {
    let env = |k: &str| var(k).filter(|v| !v.is_empty());
    let home = env("HOME").map(PathBuf::from)?;
    let config = env("PI_CONFIG_DIR").unwrap_or_else(|| DEFAULT_CONFIG_DIR.into());
    Some(home.join(config))
}

/// pi's sessions directory, resolved as pi 0.73 does (main.js, config.js):
/// `PI_CODING_AGENT_SESSION_DIR`, else `sessionDir` in its `settings.json`, else
/// `<agent dir>/sessions`; the agent dir is `PI_CODING_AGENT_DIR` or `~/.pi/agent`.
fn pi_dir_from(var: Vars<'_>) -> Option<PathBuf> {
    let env = |k: &str| var(k).filter(|v| !v.is_empty());
    let home = env("HOME").map(PathBuf::from);
    let tilde = |p: &str| -> PathBuf {
        match (p.strip_prefix("~/"), &home) {
            (Some(rest), Some(h)) => h.join(rest),
            _ if p == "~" => home.clone().unwrap_or_default(),
            _ => PathBuf::from(p),
        }
    };
    if let Some(d) = env("PI_CODING_AGENT_SESSION_DIR") {
        return Some(tilde(&d.to_string_lossy()));
    }
    let agent = match env("PI_CODING_AGENT_DIR") {
        Some(d) => tilde(&d.to_string_lossy()),
        None => home.as_ref()?.join(PI_CONFIG_DIR).join("agent"),
    };
    let from_settings = fs::read(agent.join("settings.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v.get("sessionDir")?.as_str().map(str::to_string))
        .filter(|d| !d.trim().is_empty());
    Some(match from_settings {
        Some(d) => tilde(&d),
        None => agent.join("sessions"),
    })
}

pub use crate::model::parse_name;

/// One session file and what its place on disk says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionFile {
    pub path: PathBuf,
    pub len: u64,
    /// Last modification, epoch milliseconds.
    pub mtime: Millis,
    /// When the session began: the time in the file name, else the modification time.
    pub started: Millis,
    /// The top-level session this file belongs to (itself for a top-level file): its id from
    /// the file name, else the file's stem. The delivery ledger is kept under this.
    pub root_session: String,
    /// The name the ledger marks this file complete under: the file name for a top-level
    /// session, the path below the top-level session's directory for a subagent.
    pub mark: String,
    /// For a subagent session: the parent's session file.
    pub parent: Option<PathBuf>,
}

impl SessionFile {
    /// Look at one file (metadata only). `None` when it is not a regular `.jsonl` file.
    pub fn at(path: &Path) -> io::Result<Option<SessionFile>> {
        if !is_session_name(path) {
            return Ok(None);
        }
        let meta = fs::metadata(path)?;
        if !meta.is_file() {
            return Ok(None);
        }
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let parent = parent_file(path);
        // The top-level file: follow parents up (bounded, in case of a strange tree).
        let mut root = path.to_path_buf();
        for _ in 0..MAX_DEPTH {
            match parent_file(&root) {
                Some(p) => root = p,
                None => break,
            }
        }
        let root_name = file_name(&root);
        let parsed = parse_name(&root_name);
        let root_session = match &parsed {
            Some((_, id)) => id.clone(),
            None => stem(&root),
        };
        let own = parse_name(&file_name(path));
        let started = match (&parent, own) {
            (None, Some((t, _))) => t,
            _ => mtime,
        };
        let mark = match path.strip_prefix(root.with_extension("")) {
            Ok(rel) if parent.is_some() => rel.to_string_lossy().into_owned(),
            _ => root_name,
        };
        Ok(Some(SessionFile {
            path: path.to_path_buf(),
            len: meta.len(),
            mtime,
            started,
            root_session,
            mark,
            parent,
        }))
    }

    /// The subagent's agent id (its file stem); `None` for a top-level session.
    pub fn agent_id(&self) -> Option<String> {
        self.parent.as_ref().map(|_| stem(&self.path))
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn is_session_name(p: &Path) -> bool {
    let name = file_name(p);
    !name.starts_with('.') && p.extension().is_some_and(|e| e == SESSION_EXT)
}

/// `<dir>/<stem>/<agent>.jsonl` → `<dir>/<stem>.jsonl` when that file exists.
pub fn parent_file(path: &Path) -> Option<PathBuf> {
    let dir = path.parent()?;
    let name = dir.file_name()?;
    let mut candidate = name.to_os_string();
    candidate.push(".");
    candidate.push(SESSION_EXT);
    let p = dir.parent()?.join(candidate);
    p.is_file().then_some(p)
}

/// Every `.jsonl` file under `root` (or `root` itself), recursively. Symlinked directories
/// are not followed (no loops); unreadable directories are reported and skipped.
pub fn walk(root: &Path, on_error: &mut dyn FnMut(&Path, io::Error)) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        let meta = match fs::symlink_metadata(&dir) {
            Ok(m) => m,
            Err(e) => {
                on_error(&dir, e);
                continue;
            }
        };
        // The root given may itself be a symlink to a directory; below it, links are not walked.
        let is_dir = meta.is_dir() || (depth == 0 && dir.is_dir());
        if !is_dir {
            if is_session_name(&dir) {
                out.push(dir);
            }
            continue;
        }
        if depth >= MAX_DEPTH {
            continue;
        }
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) => {
                on_error(&dir, e);
                continue;
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(ft) = entry.file_type() else { continue };
            if ft.is_dir() {
                if !file_name(&path).starts_with('.') {
                    stack.push((path, depth + 1));
                }
            } else if (ft.is_file() || ft.is_symlink()) && is_session_name(&path) {
                out.push(path);
            }
        }
    }
    out
}

/// Which sessions to take.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Sessions started at or after this time.
    pub since: Option<Millis>,
    /// Session ids or prefixes (of the top-level session); empty = all.
    pub sessions: Vec<String>,
}

impl Filter {
    fn keeps(&self, root: &SessionFile) -> bool {
        self.since.is_none_or(|s| root.started >= s)
            && (self.sessions.is_empty()
                || self
                    .sessions
                    .iter()
                    .any(|id| !id.is_empty() && root.root_session.starts_with(id.as_str())))
    }
}

/// The session files under `paths`, in processing order: top-level sessions oldest first,
/// each followed by its subagents (depth first, oldest first), so a parent is always read
/// before its subagents. A subagent whose parent is not among them keeps its own place.
pub fn discover(
    paths: &[PathBuf],
    filter: &Filter,
    on_error: &mut dyn FnMut(&Path, io::Error),
) -> Vec<SessionFile> {
    let mut seen = HashSet::new();
    let mut files = Vec::new();
    for p in paths {
        for f in walk(p, on_error) {
            if !seen.insert(f.clone()) {
                continue;
            }
            match SessionFile::at(&f) {
                Ok(Some(sf)) => files.push(sf),
                Ok(None) => {}
                Err(e) => on_error(&f, e),
            }
        }
    }
    // Filters apply to the top-level session, so a session keeps all its subagents.
    let mut root_info: HashMap<PathBuf, bool> = HashMap::new();
    files.retain(|f| {
        let root = root_path(f);
        *root_info
            .entry(root.clone())
            .or_insert_with(|| match SessionFile::at(&root) {
                Ok(Some(r)) => filter.keeps(&r),
                _ => filter.keeps(f),
            })
    });
    order(files)
}

/// The top-level file of `f` (itself when it is one).
fn root_path(f: &SessionFile) -> PathBuf {
    let mut root = f.path.clone();
    for _ in 0..MAX_DEPTH {
        match parent_file(&root) {
            Some(p) => root = p,
            None => break,
        }
    }
    root
}

fn order(files: Vec<SessionFile>) -> Vec<SessionFile> {
    let by_time = |a: &SessionFile, b: &SessionFile| {
        (a.started, a.mtime, &a.path).cmp(&(b.started, b.mtime, &b.path))
    };
    let present: HashSet<PathBuf> = files.iter().map(|f| f.path.clone()).collect();
    let mut children: HashMap<PathBuf, Vec<SessionFile>> = HashMap::new();
    let mut tops = Vec::new();
    for f in files {
        match &f.parent {
            Some(p) if present.contains(p) => children.entry(p.clone()).or_default().push(f),
            _ => tops.push(f),
        }
    }
    tops.sort_by(by_time);
    for list in children.values_mut() {
        // Subagents have no time in their name: their order is their files' ages.
        list.sort_by(|a, b| (a.mtime, &a.path).cmp(&(b.mtime, &b.path)));
    }
    let mut out = Vec::with_capacity(present.len());
    for top in tops {
        let mut stack = vec![top];
        while let Some(f) = stack.pop() {
            if let Some(mut kids) = children.remove(&f.path) {
                kids.reverse();
                stack.extend(kids);
            }
            out.push(f);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_give_time_and_id() {
        let (t, id) =
            parse_name("2026-08-23T09-14-02-117Z_01a02de5-fc05-7c3a-9b2e-5d4c3b2a1f00.jsonl")
                .unwrap();
        assert_eq!(t, 1_787_476_442_117);
        assert_eq!(id, "01a02de5-fc05-7c3a-9b2e-5d4c3b2a1f00");
        assert_eq!(parse_name("GoldenLlama.jsonl"), None);
        assert_eq!(parse_name("2026-08-23T09-14-02-117Z_.jsonl"), None);
        assert_eq!(parse_name("notes_x.jsonl"), None);
    }

    #[test]
    fn discovery_orders_sessions_and_nests_subagents() {
        let dir = tempfile::tempdir().unwrap();
        let proj = dir.path().join("-project");
        let a = "2026-08-23T09-14-02-117Z_aaaa";
        let b = "2026-08-22T09-14-02-117Z_bbbb";
        fs::create_dir_all(proj.join(a).join("Scout")).unwrap();
        for f in [
            format!("{a}.jsonl"),
            format!("{b}.jsonl"),
            format!("{a}/Scout.jsonl"),
            format!("{a}/Scout/Deep.jsonl"),
            format!("{a}/Scout.md"),
            "legacy.jsonl".into(),
        ] {
            fs::write(proj.join(f), "{}\n").unwrap();
        }
        let mut errors = 0;
        let found = discover(
            &[dir.path().to_path_buf()],
            &Filter::default(),
            &mut |_, _| errors += 1,
        );
        let names: Vec<String> = found
            .iter()
            .map(|f| format!("{}:{}", f.root_session, f.mark))
            .collect();
        // The undated legacy file sorts by its (current) mtime: last.
        assert_eq!(
            names,
            vec![
                format!("bbbb:{b}.jsonl"),
                format!("aaaa:{a}.jsonl"),
                "aaaa:Scout.jsonl".into(),
                "aaaa:Scout/Deep.jsonl".into(),
                "legacy:legacy.jsonl".into(),
            ]
        );
        assert_eq!(errors, 0);
        assert_eq!(found[2].agent_id().as_deref(), Some("Scout"));
        assert_eq!(
            found[3].parent.as_deref(),
            Some(&*proj.join(a).join("Scout.jsonl"))
        );

        let only_a = Filter {
            sessions: vec!["aa".into()],
            ..Filter::default()
        };
        assert_eq!(
            discover(&[dir.path().to_path_buf()], &only_a, &mut |_, _| {}).len(),
            3
        );
        let since = Filter {
            since: crate::model::parse_iso("2026-08-23T00:00:00Z"),
            ..Filter::default()
        };
        let kept = discover(&[proj.join(a).join("Scout.jsonl")], &since, &mut |_, _| {});
        assert_eq!(
            kept.len(),
            1,
            "a subagent follows its top-level session's date"
        );
    }

    #[test]
    fn default_dir_follows_omp() {
        let xdg = tempfile::tempdir().unwrap();
        let resolve = |vars: &[(&str, &str)]| {
            let vars: Vec<(String, String)> = vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            default_dir_from(&|k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.into()))
        };
        assert_eq!(
            resolve(&[("HOME", "/h")]).unwrap(),
            PathBuf::from("/h/.omp/agent/sessions")
        );
        assert_eq!(
            resolve(&[("HOME", "/h"), ("PI_CONFIG_DIR", ".pi")]).unwrap(),
            PathBuf::from("/h/.pi/agent/sessions")
        );
        assert_eq!(
            resolve(&[("HOME", "/h"), ("PI_CODING_AGENT_DIR", "/a")]).unwrap(),
            PathBuf::from("/a/sessions")
        );
        let x = xdg.path().to_str().unwrap();
        // XDG only once omp has moved there (the `omp` directory exists).
        assert_eq!(
            resolve(&[("HOME", "/h"), ("XDG_DATA_HOME", x)]).unwrap(),
            PathBuf::from("/h/.omp/agent/sessions")
        );
        fs::create_dir(xdg.path().join("omp")).unwrap();
        assert_eq!(
            resolve(&[("HOME", "/h"), ("XDG_DATA_HOME", x)]).unwrap(),
            xdg.path().join("omp/sessions")
        );
        assert!(resolve(&[]).is_err());
    }

    #[test]
    fn default_dirs_find_every_producer_that_exists() {
        let home = tempfile::tempdir().unwrap();
        let h = home.path();
        let vars_of = |extra: &[(&str, String)]| {
            let mut v: Vec<(String, String)> = vec![("HOME".into(), h.display().to_string())];
            v.extend(extra.iter().map(|(k, x)| (k.to_string(), x.clone())));
            v
        };
        let dirs = |profile: Option<&str>, vars: &[(String, String)]| {
            default_dirs_from(profile, &|k| {
                vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.into())
            })
            .unwrap()
        };
        let omp = h.join(".omp/agent/sessions");
        let pi = h.join(".pi/agent/sessions");
        // Nothing exists yet: omp's default, to wait on.
        assert_eq!(dirs(None, &vars_of(&[])), vec![omp.clone()]);
        // A pi-only user.
        fs::create_dir_all(&pi).unwrap();
        assert_eq!(dirs(None, &vars_of(&[])), vec![pi.clone()]);
        // Both, omp first.
        fs::create_dir_all(&omp).unwrap();
        assert_eq!(dirs(None, &vars_of(&[])), vec![omp.clone(), pi.clone()]);
        // An omp profile from the environment, or every profile when asked.
        let work = h.join(".omp/profiles/work/agent/sessions");
        let play = h.join(".omp/profiles/play/agent/sessions");
        fs::create_dir_all(&work).unwrap();
        fs::create_dir_all(&play).unwrap();
        let with_profile = vars_of(&[("OMP_PROFILE", "work".into())]);
        assert_eq!(dirs(None, &with_profile), vec![work.clone(), pi.clone()]);
        assert_eq!(
            dirs(Some(ALL_PROFILES), &vars_of(&[])),
            vec![omp.clone(), play, work, pi.clone()]
        );
        // pi's own variables and its settings' sessionDir.
        let elsewhere = h.join("pi-sessions");
        fs::create_dir_all(&elsewhere).unwrap();
        fs::write(
            h.join(".pi/agent/settings.json"),
            r#"{"sessionDir": "~/pi-sessions"}"#,
        )
        .unwrap();
        assert_eq!(
            dirs(None, &vars_of(&[])),
            vec![omp.clone(), elsewhere.clone()]
        );
        let env_dir = vars_of(&[("PI_CODING_AGENT_SESSION_DIR", pi.display().to_string())]);
        assert_eq!(dirs(None, &env_dir), vec![omp, pi]);
        assert!(default_dirs_from(Some("../x"), &|k| (k == "HOME").then(|| h.into())).is_err());
    }
}
