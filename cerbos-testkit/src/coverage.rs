//! [`PolicyCoverage`]: the resource kinds and actions a policy directory
//! covers, checked against every (kind, action) an application can ask
//! about, so that a typo in a kind or an action no policy grants is a
//! failing test instead of a 403 in production.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt, fs,
    path::{Path, PathBuf},
};

use crate::{Error, Result};

/// The resource policies of a directory: for each resource kind, the
/// action patterns its rules mention (`*` and `view:*` wildcards
/// included). Derived roles, principal and role policies, conditions,
/// versions and scopes do not matter here: the question is only "could
/// any rule ever decide this action on this kind".
///
/// ```no_run
/// let coverage = cerbos_testkit::PolicyCoverage::load("examples/policies").unwrap();
/// coverage.assert_covers([("contact", "read"), ("contact", "update")]);
/// ```
#[derive(Clone, Debug, Default)]
pub struct PolicyCoverage {
    dir: PathBuf,
    kinds: BTreeMap<String, BTreeSet<String>>,
}

/// What a policy directory does not cover: kinds with no resource policy,
/// and actions that no rule of their kind's policies mentions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoverageGaps {
    dir: PathBuf,
    /// Kinds without a resource policy, with the actions asked of them.
    pub missing_kinds: BTreeMap<String, BTreeSet<String>>,
    /// For kinds with a policy, the asked actions no rule mentions.
    pub missing_actions: BTreeMap<String, BTreeSet<String>>,
}

impl fmt::Display for CoverageGaps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "the Cerbos policies in {} do not cover what the application asks:",
            self.dir.display()
        )?;
        for (kind, actions) in &self.missing_kinds {
            writeln!(
                f,
                "  resource kind {kind:?} has no resource policy (asked: {})",
                list(actions)
            )?;
        }
        for (kind, actions) in &self.missing_actions {
            writeln!(
                f,
                "  resource kind {kind:?}: no rule mentions {}",
                list(actions)
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for CoverageGaps {}

fn list(items: &BTreeSet<String>) -> String {
    items
        .iter()
        .map(|item| format!("{item:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl PolicyCoverage {
    /// Reads the resource policies of `dir` and its subdirectories
    /// (`*.yaml` and `*.yml`; `*_test.yaml` files and `testdata`
    /// directories are policy tests, as for `cerbos compile`). A policy
    /// file this reader cannot follow (JSON policies, a `resource` or an
    /// `actions` that is not a plain string or list of strings) is an
    /// error, never skipped.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let mut coverage = PolicyCoverage {
            dir: dir.to_owned(),
            kinds: BTreeMap::new(),
        };
        let mut files = Vec::new();
        policy_files(dir, &mut files)?;
        files.sort();
        for file in files {
            let text = fs::read_to_string(&file)?;
            for (kind, actions) in resource_policies(&text).map_err(|message| Error::Policy {
                file: file.clone(),
                message,
            })? {
                coverage.kinds.entry(kind).or_default().extend(actions);
            }
        }
        Ok(coverage)
    }

    /// The kinds with a resource policy, and the action patterns of their
    /// rules.
    pub fn kinds(&self) -> &BTreeMap<String, BTreeSet<String>> {
        &self.kinds
    }

    /// Checks every `(kind, action)` the application asks about: `Err`
    /// lists each kind without a resource policy and each action that no
    /// rule of its kind mentions.
    pub fn check<K, A>(
        &self,
        asked: impl IntoIterator<Item = (K, A)>,
    ) -> std::result::Result<(), CoverageGaps>
    where
        K: AsRef<str>,
        A: AsRef<str>,
    {
        let mut gaps = CoverageGaps {
            dir: self.dir.clone(),
            missing_kinds: BTreeMap::new(),
            missing_actions: BTreeMap::new(),
        };
        for (kind, action) in asked {
            let (kind, action) = (kind.as_ref(), action.as_ref());
            match self.kinds.get(kind) {
                None => {
                    gaps.missing_kinds
                        .entry(kind.to_owned())
                        .or_default()
                        .insert(action.to_owned());
                }
                Some(patterns) if !patterns.iter().any(|p| matches(p, action)) => {
                    gaps.missing_actions
                        .entry(kind.to_owned())
                        .or_default()
                        .insert(action.to_owned());
                }
                Some(_) => {}
            }
        }
        if gaps.missing_kinds.is_empty() && gaps.missing_actions.is_empty() {
            Ok(())
        } else {
            Err(gaps)
        }
    }

    /// [`check`](Self::check), panicking with the list of gaps: for tests.
    #[track_caller]
    pub fn assert_covers<K, A>(&self, asked: impl IntoIterator<Item = (K, A)>)
    where
        K: AsRef<str>,
        A: AsRef<str>,
    {
        if let Err(gaps) = self.check(asked) {
            panic!("{gaps}");
        }
    }
}

/// `true` if the action pattern of a rule mentions `action`: equal, or a
/// glob whose `*` stands for any characters (`*`, `view:*`).
fn matches(pattern: &str, action: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return false;
    };
    let Some(mut rest) = action.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

fn policy_files(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if path.is_dir() {
            if name != "testdata" {
                policy_files(&path, files)?;
            }
        } else if name.ends_with("_test.yaml") || name.ends_with("_test.yml") {
            continue;
        } else if name.ends_with(".yaml") || name.ends_with(".yml") {
            files.push(path);
        } else if name.ends_with(".json") {
            return Err(Error::Policy {
                file: path,
                message: "JSON policies are not read by PolicyCoverage: write them in YAML".into(),
            });
        }
    }
    Ok(())
}

/// The text of a line without its comment (a `#` at the start or after a
/// space, outside quotes).
fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    let mut previous = ' ';
    for (at, c) in line.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') if previous.is_whitespace() => return &line[..at],
            _ => {}
        }
        previous = c;
    }
    line
}

/// A plain YAML scalar: unquoted, or in single or double quotes.
fn scalar(text: &str) -> std::result::Result<String, String> {
    let text = text.trim();
    let unquoted = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .or_else(|| text.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')));
    match unquoted {
        Some(inner) => Ok(inner.to_owned()),
        None if text.is_empty()
            || text.starts_with(['[', '{', '&', '*', '|', '>', '!'])
            || text.contains(['"', '\'']) =>
        {
            Err(format!("{text:?} is not a plain string"))
        }
        None => Ok(text.to_owned()),
    }
}

/// A flow list of plain scalars: `[read, "update"]`.
fn flow_list(text: &str) -> std::result::Result<Vec<String>, String> {
    let inner = text
        .trim()
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .ok_or_else(|| format!("{text:?} is not a list"))?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(scalar)
        .collect()
}

/// The resource policies of one file: `(resource kind, action patterns)`
/// for each YAML document with a `resourcePolicy`. Reads the layout Cerbos
/// policies use: block mappings, `actions` as a flow list
/// (`actions: [read]`) or a block list (`- read` lines below it).
fn resource_policies(text: &str) -> std::result::Result<Vec<(String, Vec<String>)>, String> {
    let mut policies = Vec::new();
    for document in text.split("\n---") {
        let lines: Vec<(usize, &str)> = document
            .lines()
            .map(strip_comment)
            .filter(|line| !line.trim().is_empty())
            .map(|line| (line.len() - line.trim_start().len(), line.trim()))
            .collect();
        let Some(start) = lines
            .iter()
            .position(|(indent, line)| *indent == 0 && line.starts_with("resourcePolicy:"))
        else {
            continue;
        };
        let body: Vec<(usize, &str)> = lines[start + 1..]
            .iter()
            .take_while(|(indent, _)| *indent > 0)
            .copied()
            .collect();
        let Some(key_indent) = body.first().map(|(indent, _)| *indent) else {
            return Err("an empty resourcePolicy".into());
        };
        let mut kind = None;
        let mut actions = Vec::new();
        let mut at = 0;
        while at < body.len() {
            let (indent, line) = body[at];
            at += 1;
            if indent == key_indent
                && let Some(value) = line.strip_prefix("resource:")
            {
                kind = Some(scalar(value).map_err(|e| format!("resource: {e}"))?);
                continue;
            }
            // A rule's key, possibly the first of its list item.
            let key = line.strip_prefix("- ").unwrap_or(line).trim_start();
            let Some(value) = key.strip_prefix("actions:") else {
                continue;
            };
            // The key's column: past a list item's `- `.
            let column = indent + (line.len() - key.len());
            if column <= key_indent {
                continue;
            }
            if value.trim().is_empty() {
                // A block list below, its items at the key's column or
                // deeper.
                while at < body.len() && body[at].0 >= column && body[at].1.starts_with('-') {
                    let item = body[at].1.trim_start_matches('-');
                    actions.push(scalar(item).map_err(|e| format!("actions: {e}"))?);
                    at += 1;
                }
            } else {
                actions.extend(flow_list(value).map_err(|e| format!("actions: {e}"))?);
            }
        }
        let kind = kind.ok_or("a resourcePolicy without `resource`")?;
        policies.push((kind, actions));
    }
    Ok(policies)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(matches("*", "read"));
        assert!(matches("read", "read"));
        assert!(!matches("read", "reader"));
        assert!(matches("view:*", "view:public"));
        assert!(!matches("view:*", "edit:public"));
        assert!(matches("a*c", "abc"));
        assert!(!matches("a*c", "ab"));
    }

    #[test]
    fn flow_and_block_lists_comments_and_documents() {
        let text = "\
# a comment
apiVersion: api.cerbos.dev/v1
resourcePolicy:
  version: default
  resource: \"document\" # the kind
  rules:
    - actions: [read, 'update']
      effect: EFFECT_ALLOW
      roles: [user]
    - effect: EFFECT_ALLOW
      actions:
        - delete
        - \"share:*\"
      roles: [admin]
---
apiVersion: api.cerbos.dev/v1
derivedRoles:
  name: roles
  definitions:
    - name: owner
      parentRoles: [user]
---
apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: album
  rules:
  - actions: ['*']
    effect: EFFECT_ALLOW
    roles: [admin]
";
        assert_eq!(
            resource_policies(text).unwrap(),
            vec![
                (
                    "document".to_owned(),
                    vec!["read", "update", "delete", "share:*"]
                        .into_iter()
                        .map(str::to_owned)
                        .collect()
                ),
                ("album".to_owned(), vec!["*".to_owned()]),
            ]
        );
        assert!(resource_policies("resourcePolicy:\n  resource: [x]\n").is_err());
        assert!(resource_policies("resourcePolicy:\n  version: default\n").is_err());
    }

    #[test]
    fn gaps_name_every_missing_kind_and_action() {
        let mut coverage = PolicyCoverage::default();
        coverage.kinds.insert(
            "contact".into(),
            ["read".to_owned(), "update".to_owned()].into(),
        );
        coverage
            .kinds
            .insert("admin".into(), ["*".to_owned()].into());
        assert_eq!(
            coverage.check([("contact", "read"), ("admin", "anything")]),
            Ok(())
        );
        let gaps = coverage
            .check([
                ("contact", "read"),
                ("contact", "archive"),
                ("documnet", "read"),
                ("documnet", "update"),
            ])
            .unwrap_err();
        assert_eq!(
            gaps.to_string(),
            "the Cerbos policies in  do not cover what the application asks:\n  \
             resource kind \"documnet\" has no resource policy (asked: \"read\", \"update\")\n  \
             resource kind \"contact\": no rule mentions \"archive\"\n"
        );
    }
}
