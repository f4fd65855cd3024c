//! Tests on real archives made the way GitLab makes them.

use std::fs;
use std::io::Read;
use std::process::Command;

use super::catalogue::{find_backup, list_backups, read_backup};
use super::compression::{locate_member, open_member, Compression};
use super::testkit::{gitlab_archive, information, sql_dump, truncate, DumpCompression, Staging};
use super::verify::verify;
use super::{BackupError, BackupKind};
use crate::progress::{Event, NullSink, Phase};
use crate::version::GitLabVersion;

const ID: &str = "1713867342_2024_04_23_16.10.3-ee";

fn installed() -> GitLabVersion {
    "16.10.3-ee".parse().unwrap()
}

#[test]
fn lists_and_verifies_a_gzip_backup() {
    let tmp = tempfile::tempdir().unwrap();
    let path = gitlab_archive(tmp.path(), ID, "16.10.3-ee", DumpCompression::Gzip);
    let list = list_backups(tmp.path(), Some(&installed())).unwrap();
    assert_eq!(list.len(), 1);
    let b = &list[0];
    assert_eq!(b.id, ID);
    assert_eq!(b.kind, BackupKind::Tar);
    assert_eq!(b.error, None);
    assert_eq!(b.version.as_ref().unwrap().to_string(), "16.10.3-ee");
    assert_eq!(b.version_matches, Some(true));
    assert_eq!(b.size, fs::metadata(&path).unwrap().len());
    assert_eq!(
        b.created_at.unwrap().to_rfc3339(),
        "2024-04-23T10:15:42+00:00"
    );
    assert_eq!(b.databases.len(), 1);
    assert_eq!(b.databases[0].name, "main");
    assert_eq!(b.databases[0].compression, Some(Compression::Gzip));
    assert_eq!(b.components.len(), 1);
    assert_eq!(b.components[0].name, "uploads");
    assert!(!b.repositories);
    let other: GitLabVersion = "16.11.0-ee".parse().unwrap();
    let list = list_backups(tmp.path(), Some(&other)).unwrap();
    assert_eq!(list[0].version_matches, Some(false));

    let events = std::sync::Mutex::new(Vec::new());
    let sink = |e: Event| events.lock().unwrap().push(e);
    let report = verify(&path, &sink, None).unwrap();
    let db = report
        .members
        .iter()
        .find(|m| m.name == "db/database.sql.gz")
        .unwrap();
    assert_eq!(db.compression, Some(Compression::Gzip));
    assert_eq!(
        db.decoded_bytes,
        Some(fs::metadata(sql_dump()).unwrap().len())
    );
    // The dump's catalogue was read on the way, as the restore's own pass reads it.
    let (own, _) =
        crate::restore::leftovers::read_catalog(fs::File::open(sql_dump()).unwrap(), "dump")
            .unwrap();
    assert!(!own.is_empty());
    assert_eq!(db.catalog.as_deref(), Some(&own));
    let up = report
        .members
        .iter()
        .find(|m| m.name == "uploads.tar.gz")
        .unwrap();
    // `.`, `./@hashed`, `./@hashed/ab`, `./@hashed/ab/cd` and 5 files.
    assert_eq!(up.nested_entries, Some(9));
    assert_eq!(report.bytes_read, fs::metadata(&path).unwrap().len());
    let events = events.into_inner().unwrap();
    assert!(matches!(
        events.first(),
        Some(Event::PhaseStarted {
            phase: Phase::Verify,
            ..
        })
    ));
    assert!(matches!(
        events.last(),
        Some(Event::PhaseFinished {
            phase: Phase::Verify,
            ok: true
        })
    ));
}

#[test]
fn zstd_dump_under_the_gz_name_is_detected_and_streamed() {
    let tmp = tempfile::tempdir().unwrap();
    let path = gitlab_archive(tmp.path(), ID, "16.10.3-ee", DumpCompression::Zstd);
    let b = read_backup(&path, None, true).unwrap();
    assert_eq!(b.databases[0].compression, Some(Compression::Zstd));
    verify(&path, &NullSink, None).unwrap();

    // open_member streams the SQL text itself, in place, counting compressed bytes.
    let mut m = open_member(&path, "db/database.sql.gz").unwrap();
    assert_eq!(m.compression, Compression::Zstd);
    let mut sql = Vec::new();
    m.read_to_end(&mut sql).unwrap();
    assert_eq!(sql, fs::read(sql_dump()).unwrap());
    assert!(String::from_utf8_lossy(&sql).contains("DROP TABLE IF EXISTS public.projects;"));
    assert_eq!(m.progress.get(), m.compressed_size);
    let loc = locate_member(&path, "./db/database.sql.gz").unwrap();
    assert_eq!(loc.size, m.compressed_size);
}

#[test]
fn open_member_streams_gzip_and_component_archives() {
    let tmp = tempfile::tempdir().unwrap();
    let path = gitlab_archive(tmp.path(), ID, "16.10.3-ee", DumpCompression::Gzip);
    let mut m = open_member(&path, "db/database.sql.gz").unwrap();
    assert_eq!(m.compression, Compression::Gzip);
    let mut sql = Vec::new();
    m.read_to_end(&mut sql).unwrap();
    assert_eq!(sql, fs::read(sql_dump()).unwrap());

    let m = open_member(&path, "uploads.tar.gz").unwrap();
    let mut inner = tar::Archive::new(m);
    let names: Vec<String> = inner
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert!(
        names.iter().any(|n| n.ends_with("@hashed/ab/cd/file3.txt")),
        "{names:?}"
    );

    match open_member(&path, "db/ci_database.sql.gz") {
        Err(BackupError::MemberNotFound { member, .. }) => {
            assert_eq!(member, "db/ci_database.sql.gz")
        }
        other => panic!("expected MemberNotFound, got {other:?}"),
    }
    assert!(matches!(
        open_member(&path, "../etc/passwd"),
        Err(BackupError::UnsafeMemberName { .. })
    ));
}

#[test]
fn truncated_inside_the_dump_names_the_member() {
    let tmp = tempfile::tempdir().unwrap();
    let path = gitlab_archive(tmp.path(), ID, "16.10.3-ee", DumpCompression::Zstd);
    let loc = locate_member(&path, "db/database.sql.gz").unwrap();
    assert!(
        loc.offset + loc.size > 200_000,
        "the dump must extend past 200 kB for this test"
    );
    truncate(&path, 200_000);
    let err = verify(&path, &NullSink, None).unwrap_err();
    assert!(
        matches!(&err, BackupError::Truncated { member, .. } if member == "db/database.sql.gz"),
        "{err}"
    );
    assert!(err.to_string().contains("pick another backup"), "{err}");
    // Listing notices it from the headers alone.
    let err = read_backup(&path, None, false).unwrap_err();
    assert!(
        matches!(&err, BackupError::Truncated { member, .. } if member == "db/database.sql.gz"),
        "{err}"
    );
    let list = list_backups(tmp.path(), None).unwrap();
    assert!(list[0]
        .error
        .as_deref()
        .unwrap()
        .contains("db/database.sql.gz"));
    // Streaming the member fails too, naming it.
    let err = open_member(&path, "db/database.sql.gz").unwrap_err();
    assert!(matches!(err, BackupError::Truncated { .. }), "{err}");
}

#[test]
fn truncated_between_members_or_without_end_marker() {
    let tmp = tempfile::tempdir().unwrap();
    let path = gitlab_archive(tmp.path(), ID, "16.10.3-ee", DumpCompression::Gzip);
    // Cut right after the last member's data: no end-of-archive blocks.
    let loc = locate_member(&path, "uploads.tar.gz").unwrap();
    let end = loc.offset + loc.size.div_ceil(512) * 512;
    truncate(&path, end);
    let err = verify(&path, &NullSink, None).unwrap_err();
    assert!(
        matches!(&err, BackupError::MissingEnd { last_member, .. } if last_member == "uploads.tar.gz"),
        "{err}"
    );
    // Cut inside a header.
    truncate(&path, loc.offset - 512 + 100);
    let err = verify(&path, &NullSink, None).unwrap_err();
    assert!(matches!(err, BackupError::Truncated { .. }), "{err}");
}

#[test]
fn flipped_byte_in_a_gzip_member_is_caught() {
    let tmp = tempfile::tempdir().unwrap();
    let path = gitlab_archive(tmp.path(), ID, "16.10.3-ee", DumpCompression::Gzip);
    let loc = locate_member(&path, "db/database.sql.gz").unwrap();
    let mut bytes = fs::read(&path).unwrap();
    let at = (loc.offset + loc.size / 2) as usize;
    bytes[at] ^= 0x55;
    fs::write(&path, &bytes).unwrap();
    // The listing reads headers only: it does not notice.
    assert!(read_backup(&path, None, true).is_ok());
    let err = verify(&path, &NullSink, None).unwrap_err();
    assert!(
        matches!(&err, BackupError::CorruptGzip { member, .. } if member == "db/database.sql.gz"),
        "{err}"
    );
    let mut m = open_member(&path, "db/database.sql.gz").unwrap();
    let e = std::io::copy(&mut m, &mut std::io::sink()).unwrap_err();
    let typed = e.into_inner().unwrap().downcast::<BackupError>().unwrap();
    assert!(matches!(*typed, BackupError::CorruptGzip { .. }), "{typed}");
}

#[test]
fn zstd_member_cut_short_is_caught() {
    let tmp = tempfile::tempdir().unwrap();
    let staging = Staging::new(Some(&information("16.10.3-ee", &[])), DumpCompression::Zstd);
    let dump = staging.dir.join("db/database.sql.gz");
    let len = fs::metadata(&dump).unwrap().len();
    truncate(&dump, len / 2);
    let path = tmp.path().join(format!("{ID}_gitlab_backup.tar"));
    staging.tar(&path);
    let err = verify(&path, &NullSink, None).unwrap_err();
    assert!(
        matches!(&err, BackupError::CorruptZstd { member, .. } if member == "db/database.sql.gz"),
        "{err}"
    );
    // The unpacked form fails the same way.
    let err = verify(&staging.dir, &NullSink, None).unwrap_err();
    assert!(matches!(err, BackupError::CorruptZstd { .. }), "{err}");
}

#[test]
fn missing_and_malformed_manifests() {
    let tmp = tempfile::tempdir().unwrap();
    let staging = Staging::new(None, DumpCompression::Gzip);
    let path = tmp.path().join(format!("{ID}_gitlab_backup.tar"));
    staging.tar(&path);
    assert!(matches!(
        read_backup(&path, None, false),
        Err(BackupError::MissingInformation { .. })
    ));
    assert!(matches!(
        verify(&path, &NullSink, None),
        Err(BackupError::MissingInformation { .. })
    ));

    fs::write(
        staging.dir.join("backup_information.yml"),
        ":db_version: [20240410123456\n:gitlab_version: 16.10.3-ee\n",
    )
    .unwrap();
    staging.tar(&path);
    let err = read_backup(&path, None, false).unwrap_err();
    assert!(
        matches!(err, BackupError::MalformedInformation { .. }),
        "{err}"
    );
    assert_eq!(err.member(), Some("backup_information.yml"));
    assert!(matches!(
        verify(&path, &NullSink, None),
        Err(BackupError::MalformedInformation { .. })
    ));
}

#[test]
fn not_a_tar_empty_dir_and_unreadable_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    assert!(matches!(
        list_backups(&empty, None),
        Err(BackupError::EmptyDir { .. })
    ));
    assert!(matches!(
        list_backups(&tmp.path().join("nope"), None),
        Err(BackupError::NoDir { .. })
    ));
    let junk = empty.join(format!("{ID}_gitlab_backup.tar"));
    fs::write(&junk, "this is a text file, not an archive\n".repeat(100)).unwrap();
    let err = read_backup(&junk, None, false).unwrap_err();
    assert!(matches!(err, BackupError::NotATar { .. }), "{err}");
    assert!(matches!(
        verify(&junk, &NullSink, None),
        Err(BackupError::NotATar { .. })
    ));
    // A gzip file is not a tar either.
    let gz = tmp.path().join("x.tar");
    super::testkit::pipe_file(Command::new("gzip").arg("-c"), sql_dump(), &gz);
    assert!(matches!(
        read_backup(&gz, None, false),
        Err(BackupError::NotATar { .. })
    ));
    // Listing keeps going and marks it.
    let list = list_backups(&empty, None).unwrap();
    assert!(list[0]
        .error
        .as_deref()
        .unwrap()
        .contains("not a tar archive"));
    // A directory where the archive file should be is not readable as one.
    let missing = tmp.path().join("gone_gitlab_backup.tar");
    let err = read_backup(&missing, None, false).unwrap_err();
    assert!(matches!(err, BackupError::Unreadable { .. }), "{err}");
}

#[test]
fn unreadable_file_is_a_typed_error() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let path = gitlab_archive(tmp.path(), ID, "16.10.3-ee", DumpCompression::Gzip);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o000)).unwrap();
    let result = if crate::pg::cluster::running_as_root() {
        // Root ignores permission bits. On Linux the file-system uid is per thread, and
        // moving it off 0 drops CAP_DAC_OVERRIDE: open the file as `nobody` on this thread
        // only, then restore it.
        use nix::unistd::{setfsuid, Uid};
        let old = setfsuid(Uid::from_raw(65534));
        let r = read_backup(&path, None, false);
        setfsuid(old);
        r
    } else {
        read_backup(&path, None, false)
    };
    match result {
        Err(BackupError::Unreadable { source, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::PermissionDenied)
        }
        other => panic!("expected Unreadable, got {other:?}"),
    }
    let err = BackupError::unreadable(&path, std::io::Error::from_raw_os_error(13));
    assert!(err.to_string().contains("run Rewind as root"), "{err}");
}

#[test]
fn ids_resolve_exactly_or_by_unique_prefix() {
    let tmp = tempfile::tempdir().unwrap();
    let a = "1713867342_2024_04_23_16.10.3-ee";
    let b = "1713869999_2024_04_23_16.10.3-ee";
    let pa = gitlab_archive(tmp.path(), a, "16.10.3-ee", DumpCompression::Gzip);
    fs::copy(&pa, tmp.path().join(format!("{b}_gitlab_backup.tar"))).unwrap();
    assert_eq!(find_backup(tmp.path(), a, None, false).unwrap().id, a);
    assert_eq!(
        find_backup(tmp.path(), &format!("{a}_gitlab_backup.tar"), None, false)
            .unwrap()
            .id,
        a
    );
    assert_eq!(
        find_backup(tmp.path(), "17138699", None, false).unwrap().id,
        b
    );
    let err = find_backup(tmp.path(), "171386", None, false).unwrap_err();
    assert!(matches!(err, BackupError::Ambiguous { .. }), "{err}");
    assert!(
        err.to_string().contains("Found more than one backup"),
        "{err}"
    );
    assert!(
        err.to_string().contains(a) && err.to_string().contains(b),
        "{err}"
    );
    let err = find_backup(tmp.path(), "1600000000", None, false).unwrap_err();
    assert!(matches!(err, BackupError::NoSuchBackup { .. }), "{err}");
    assert!(err.to_string().contains(a), "{err}");
}

#[test]
fn legacy_names_unpacked_backups_and_newest_first() {
    let tmp = tempfile::tempdir().unwrap();
    // Legacy `<epoch>` name with an old five-key manifest and no creation time.
    let staging = Staging::new(None, DumpCompression::Gzip);
    fs::write(
        staging.dir.join("backup_information.yml"),
        ":db_version: 20150120093012\n:backup_created_at:\n:gitlab_version: 7.7.1\n:tar_version: tar (GNU tar) 1.26\n:skipped: \n",
    )
    .unwrap();
    staging.tar(&tmp.path().join("1421760000_gitlab_backup.tar"));
    gitlab_archive(tmp.path(), ID, "16.10.3-ee", DumpCompression::Gzip);
    // An unpacked backup in a subdirectory.
    let mut older = information("16.9.0-ee", &["uploads"]);
    older.created_at = Some(super::CreatedAt::Time(
        chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2024, 4, 1, 0, 0, 0).unwrap(),
    ));
    let unpacked = Staging::new(Some(&older), DumpCompression::Gzip);
    let sub = tmp.path().join("unpacked");
    fs::rename(&unpacked.dir, &sub).unwrap();
    let list = list_backups(tmp.path(), None).unwrap();
    let ids: Vec<&str> = list.iter().map(|b| b.id.as_str()).collect();
    assert_eq!(ids, vec![ID, "unpacked", "1421760000"], "newest first");
    let legacy = &list[2];
    assert_eq!(legacy.version_text.as_deref(), Some("7.7.1"));
    assert_eq!(legacy.created_at.unwrap().timestamp(), 1421760000);
    let up = &list[1];
    assert_eq!(up.kind, BackupKind::Directory);
    assert_eq!(up.skipped, vec!["uploads"]);
    assert_eq!(up.databases[0].compression, Some(Compression::Gzip));
    let report = verify(&sub, &NullSink, None).unwrap();
    assert!(report
        .members
        .iter()
        .any(|m| m.name == "db/database.sql.gz"));
    let mut m = open_member(&sub, "db/database.sql.gz").unwrap();
    let mut sql = Vec::new();
    m.read_to_end(&mut sql).unwrap();
    assert_eq!(sql, fs::read(sql_dump()).unwrap());
}

#[test]
fn long_names_in_gnu_and_pax_archives_and_repositories() {
    for format in ["gnu", "posix"] {
        let tmp = tempfile::tempdir().unwrap();
        let staging = Staging::new(Some(&information("16.10.3-ee", &[])), DumpCompression::Gzip);
        let deep = "@hashed/6b/86/6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b/1713867342_2024_04_23_16.10.3-ee";
        let repo = staging.dir.join("repositories/default").join(deep);
        fs::create_dir_all(&repo).unwrap();
        fs::write(repo.join("001.bundle"), b"bundle bytes").unwrap();
        let path = tmp.path().join(format!("{ID}_gitlab_backup.tar"));
        let status = Command::new("tar")
            .arg(format!("--format={format}"))
            .arg("-C")
            .arg(&staging.dir)
            .arg("-cf")
            .arg(&path)
            .args([
                "backup_information.yml",
                "db",
                "uploads.tar.gz",
                "repositories",
            ])
            .status()
            .unwrap();
        assert!(status.success());
        let b = read_backup(&path, None, false).unwrap();
        assert!(b.repositories);
        let want = format!("repositories/default/{deep}/001.bundle");
        let m = b
            .members
            .iter()
            .find(|m| m.name == want)
            .unwrap_or_else(|| panic!("{format}: {:?}", b.members));
        assert_eq!(m.size, 12);
        verify(&path, &NullSink, None).unwrap();
        let mut r = open_member(&path, &want).unwrap();
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!(s, "bundle bytes");
    }
}

#[test]
fn fifo_named_like_a_backup_is_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    gitlab_archive(tmp.path(), ID, "16.10.3-ee", DumpCompression::Gzip);
    let fifo = tmp
        .path()
        .join("1713867399_2024_04_23_16.10.3-ee_gitlab_backup.tar");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    // Without a writer, opening it for reading would block for ever.
    let list = list_backups(tmp.path(), Some(&installed())).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].id, ID);
    let err = read_backup(&fifo, None, false).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
    let err = verify(&fifo, &NullSink, None).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
}

#[test]
fn duplicated_member_is_refused_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let staging = Staging::new(Some(&information("16.10.3-ee", &[])), DumpCompression::Gzip);
    let path = tmp.path().join(format!("{ID}_gitlab_backup.tar"));
    staging.tar(&path);
    // A second copy appended: GNU tar would extract this one, a reader finds the first.
    let status = Command::new("tar")
        .arg("-C")
        .arg(&staging.dir)
        .arg("-rf")
        .arg(&path)
        .arg("db/database.sql.gz")
        .status()
        .unwrap();
    assert!(status.success());
    for err in [
        read_backup(&path, None, false).unwrap_err(),
        verify(&path, &NullSink, None).unwrap_err(),
    ] {
        assert!(
            matches!(&err, BackupError::DuplicateMember { member, .. } if member == "db/database.sql.gz"),
            "{err}"
        );
        assert_eq!(err.member(), Some("db/database.sql.gz"));
    }
}

#[test]
fn dump_that_is_not_sql_is_unreadable() {
    let staging = Staging::new(Some(&information("16.10.3-ee", &[])), DumpCompression::Gzip);
    let dump = staging.dir.join("db/database.sql.gz");
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join(format!("{ID}_gitlab_backup.tar"));
    // Neither gzip nor zstd nor SQL (a zip file's magic).
    let mut junk = b"PK\x03\x04".to_vec();
    junk.extend((0..4096u32).map(|i| (i * 7 % 251) as u8));
    fs::write(&dump, &junk).unwrap();
    staging.tar(&path);
    let err = verify(&path, &NullSink, None).unwrap_err();
    assert!(matches!(err, BackupError::NotADump { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("db/database.sql.gz")
            && msg.contains("neither gzip nor zstd")
            && msg.contains("50 4b 03 04"),
        "{msg}"
    );
    // gzip that holds no SQL.
    let raw = tmp.path().join("junk");
    fs::write(&raw, &junk).unwrap();
    super::testkit::pipe_file(Command::new("gzip").arg("-c"), &raw, &dump);
    staging.tar(&path);
    let msg = verify(&path, &NullSink, None).unwrap_err().to_string();
    assert!(msg.contains("after gzip decompression"), "{msg}");
    // A pg_dump custom-format archive is not what GitLab restores.
    fs::write(&dump, b"PGDMP\x01\x0e\x00").unwrap();
    staging.tar(&path);
    let msg = verify(&path, &NullSink, None).unwrap_err().to_string();
    assert!(msg.contains("custom-format"), "{msg}");
    // A plain SQL dump (no compression) is sound.
    fs::copy(sql_dump(), &dump).unwrap();
    staging.tar(&path);
    let report = verify(&path, &NullSink, None).unwrap();
    assert!(report
        .members
        .iter()
        .any(|m| m.name == "db/database.sql.gz" && m.compression == Some(Compression::Plain)));
}

#[test]
fn unparsable_manifest_version_is_not_taken_from_the_file_name() {
    use crate::restore::database::{check_version, RestoreFacts};
    let staging = Staging::new(None, DumpCompression::Gzip);
    let yml = information("16.10.3-ee", &[])
        .to_yaml()
        .replace(":gitlab_version: 16.10.3-ee", ":gitlab_version: 6f1b3c2a");
    assert!(yml.contains("6f1b3c2a"), "{yml}");
    fs::write(staging.dir.join("backup_information.yml"), yml).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join(format!("{ID}_gitlab_backup.tar"));
    staging.tar(&path);
    let b = read_backup(&path, Some(&installed()), false).unwrap();
    assert_eq!(b.version, None, "the id's 16.10.3-ee must not stand in");
    assert_eq!(b.version_text.as_deref(), Some("6f1b3c2a"));
    assert_eq!(b.version_matches, None);
    let facts = RestoreFacts {
        backup_version: b.version.clone(),
        backup_version_text: b.version_text.clone(),
        installed_version: Some(installed()),
        db_version: None,
        backup_path: tmp.path().to_path_buf(),
    };
    let err = check_version(&facts, false).unwrap_err().to_string();
    assert!(
        err.contains("6f1b3c2a") && err.contains("not a GitLab version"),
        "{err}"
    );
    assert!(check_version(&facts, true).is_ok());
}

#[test]
fn a_dump_that_decodes_but_does_not_parse_verifies_without_a_catalogue() {
    let tmp = tempfile::tempdir().unwrap();
    let staging =
        super::testkit::Staging::new(Some(&information("16.10.3-ee", &[])), DumpCompression::Gzip);
    // Valid gzip; a COPY block the stream ends inside (the load reports that, not verify).
    let sql = tmp.path().join("cut.sql");
    fs::write(
        &sql,
        "--\n-- PostgreSQL database dump\n--\n\nCREATE TABLE public.t (a integer);\nCOPY public.t (a) FROM stdin;\n1\n2\n",
    )
    .unwrap();
    super::testkit::pipe_file(
        Command::new("gzip").args(["-c", "-1"]),
        &sql,
        &staging.dir.join("db/database.sql.gz"),
    );
    let path = tmp.path().join(format!("{ID}_gitlab_backup.tar"));
    staging.tar(&path);
    let report = verify(&path, &NullSink, None).unwrap();
    let db = report
        .members
        .iter()
        .find(|m| m.name == "db/database.sql.gz")
        .unwrap();
    assert_eq!(db.decoded_bytes, Some(fs::metadata(&sql).unwrap().len()));
    assert_eq!(db.catalog, None);
}
