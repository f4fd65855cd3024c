//! The sandbox's `/etc/gitlab/gitlab-secrets.json` and the values in its database that
//! depend on it, so a wrong or lost secrets file is found the way GitLab finds it.
//!
//! GitLab encrypts columns with keys derived from `gitlab_rails.db_key_base`; a different
//! key fails to decrypt (`OpenSSL::Cipher::CipherError`). The sandbox stands in for the
//! cipher with a keyed digest: the encrypted columns hold SHA-256 of `db_key_base`, the
//! row and the column ([`seal`]); a row "decrypts" when the digest computed with the live
//! file's key matches ([`undecryptable`]). The drill's `gitlab-rake gitlab:doctor:secrets`
//! reports those rows in GitLab's format.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::Result;
use crate::root::HostRoot;

/// Host path of the secrets file.
pub const SECRETS: &str = "/etc/gitlab/gitlab-secrets.json";

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn derive(seed: &str, what: &str, len: usize) -> String {
    let mut out = String::new();
    let mut i = 0u32;
    while out.len() < len {
        out.push_str(&hex(&Sha256::digest(format!("{seed}:{what}:{i}"))));
        i += 1;
    }
    out.truncate(len);
    out
}

/// A secrets file shaped like Omnibus's (the keys `gitlab-ctl reconfigure` writes), with
/// values derived from `seed`.
pub fn secrets_json(seed: &str) -> serde_json::Value {
    serde_json::json!({
        "gitlab_workhorse": {"secret_token": derive(seed, "workhorse", 44)},
        "gitlab_shell": {"secret_token": derive(seed, "shell", 128)},
        "gitlab_rails": {
            "secret_key_base": derive(seed, "secret_key_base", 128),
            "db_key_base": derive(seed, "db_key_base", 128),
            "otp_key_base": derive(seed, "otp_key_base", 128),
            "encrypted_settings_key_base": derive(seed, "encrypted_settings_key_base", 128),
            "openid_connect_signing_key": format!("-----BEGIN RSA PRIVATE KEY-----\n{}\n-----END RSA PRIVATE KEY-----\n", derive(seed, "oidc", 64)),
            "ci_jwt_signing_key": format!("-----BEGIN RSA PRIVATE KEY-----\n{}\n-----END RSA PRIVATE KEY-----\n", derive(seed, "ci_jwt", 64)),
        },
        "gitlab_pages": {"gitlab_secret": derive(seed, "pages", 64), "api_secret_key": derive(seed, "pages_api", 44)},
        "registry": {"http_secret": derive(seed, "registry", 128), "internal_certificate": "", "internal_key": ""},
        "letsencrypt": {"auto_enabled": false},
        "mattermost": {"email_invite_salt": derive(seed, "mm1", 32), "file_public_link_salt": derive(seed, "mm2", 32), "sql_at_rest_encrypt_key": derive(seed, "mm3", 32)},
        "gitlab_kas": {"api_secret_key": derive(seed, "kas", 44), "private_api_secret_key": derive(seed, "kas2", 44)},
    })
}

/// Write `/etc/gitlab/gitlab-secrets.json` under `root` (0600), values from `seed`.
pub fn write_secrets(root: &HostRoot, seed: &str) -> Result<()> {
    let p = root.join(SECRETS);
    let text = serde_json::to_string_pretty(&secrets_json(seed)).expect("json") + "\n";
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).map_err(super::io_err("creating", d))?;
    }
    fs::write(&p, text)
        .and_then(|_| fs::set_permissions(&p, fs::Permissions::from_mode(0o600)))
        .map_err(super::io_err("writing", &p))
}

/// `gitlab_rails.db_key_base` of the secrets file under `root`, or why there is none.
pub fn db_key_base(root: &HostRoot) -> std::result::Result<String, String> {
    let p = root.join(SECRETS);
    let text = read_nofollow(&p).map_err(|e| format!("{SECRETS}: {e}"))?;
    let v: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| format!("{SECRETS}: not JSON ({e})"))?;
    v.pointer("/gitlab_rails/db_key_base")
        .and_then(|k| k.as_str())
        .map(str::to_string)
        .ok_or_else(|| format!("{SECRETS}: no gitlab_rails.db_key_base"))
}

fn read_nofollow(p: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(p)?;
    let mut v = Vec::new();
    f.read_to_end(&mut v)?;
    Ok(v)
}

/// The encrypted columns the sandbox checks: (GitLab model, table, column). The sandbox's
/// `application_settings.encrypted_ci_jwt_signing_key` keeps the data generator's edge-case
/// bytes (a COPY escaping test), so it is not sealed.
pub const SEALED: [(&str, &str, &str); 1] = [(
    "Ci::PipelineVariable",
    "ci_pipeline_variables",
    "encrypted_value",
)];

/// The value a column holds for a row under `key`.
pub fn sealed_value(key: &str, table: &str, id: i64) -> String {
    hex(&Sha256::digest(format!("{key}:{table}:{id}")))
}

/// Write the encrypted columns of the database under `key`.
pub fn seal(client: &mut postgres::Client, key: &str) -> std::result::Result<u64, postgres::Error> {
    let mut n = 0;
    let mut tx = client.transaction()?;
    // The key is bound as a parameter, never spliced into SQL.
    n += tx.execute(
        "UPDATE ci_pipeline_variables SET encrypted_value = encode(sha256(convert_to($1 || ':ci_pipeline_variables:' || id, 'UTF8')), 'hex')",
        &[&key],
    )?;
    tx.commit()?;
    Ok(n)
}

/// A model, its column and the ids of its rows that do not decrypt.
pub type Undecryptable = (&'static str, &'static str, Vec<i64>);

/// Per model of [`SEALED`]: the ids of rows whose column does not decrypt with `key`.
pub fn undecryptable(
    client: &mut postgres::Client,
    key: &str,
) -> std::result::Result<Vec<Undecryptable>, postgres::Error> {
    let mut out = Vec::new();
    for (model, table, column) in SEALED {
        let sql = format!("SELECT id::bigint, {column} FROM {table} ORDER BY id");
        let mut bad = Vec::new();
        for r in client.query(&sql, &[])? {
            let id: i64 = r.get(0);
            // A bytea column (application settings) or a text one.
            let v: Option<Vec<u8>> = r
                .try_get::<_, Option<Vec<u8>>>(1)
                .or_else(|_| {
                    r.try_get::<_, Option<String>>(1)
                        .map(|s| s.map(String::into_bytes))
                })
                .ok()
                .flatten();
            if v.as_deref() != Some(sealed_value(key, table, id).as_bytes()) {
                bad.push(id);
            }
        }
        out.push((model, column, bad));
    }
    Ok(out)
}
