use std::sync::Arc;

use super::*;
use crate::store::model::{IpFilter, LibraryFilter, SecretHash, Token};
use crate::store::Store;

fn token(id: &str, n: u8) -> Token {
    Token::sample(id, n)
}

fn put(id: &str, n: u8) -> Change {
    Change::PutToken {
        token: token(id, n),
    }
}

/// Opens the store, waiting out a lock held for an instant: a test in this binary spawns
/// child processes, and between a spawn's fork and its exec the child shares every open file of
/// this process, a lock file another test just dropped included (seen under load; esgate
/// itself spawns nothing). Any other error, or a lock held for a second, fails the test.
fn open(dir: &Path) -> FileStore {
    let mut tries = 0;
    loop {
        match FileStore::open(dir) {
            Ok(s) => return s,
            Err(StoreError::Io { source, .. })
                if source.kind() == io::ErrorKind::WouldBlock && tries < 100 =>
            {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => panic!("open failed: {e}"),
        }
    }
}

fn open_loaded(dir: &Path) -> (FileStore, Vec<Change>) {
    let mut s = open(dir);
    match s.load() {
        Ok(changes) => (s, changes),
        Err(e) => panic!("load failed: {e}"),
    }
}

/// The state a list of changes builds, as the canonical change list (order-independent).
fn state_of(changes: &[Change]) -> Vec<Change> {
    let mut snap = Snapshot::default();
    for c in changes {
        snap.apply(c);
    }
    state_changes(&snap)
}

fn append(s: &mut FileStore, changes: &[Change]) {
    if let Err(e) = s.append(changes) {
        panic!("append failed: {e}");
    }
}

fn journal(dir: &Path) -> Vec<u8> {
    fs::read(dir.join(JOURNAL)).unwrap_or_default()
}

fn write_journal(dir: &Path, data: &[u8]) {
    fs::write(dir.join(JOURNAL), data).expect("write journal");
}

/// A journal and a snapshot written before rotation and limits existed (token records
/// without `previous_secret` and `limits`) load unchanged; a rotated token with limits
/// survives a reopen and a compaction, its previous secret still indexed.
#[test]
fn records_without_the_rotation_and_limit_fields_load_and_new_ones_round_trip() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let hash = "11".repeat(32);
    let old_token = format!(
        r#"{{"id":"old","name":"old","secret_hash":"{hash}","filters":[],"indices":["*"],"permissions":["read"],"created_at":1,"expires_at":null,"ip_filter":null}}"#
    );
    let body = format!(r#"1 [{{"op":"put_token","token":{old_token}}}]"#);
    let line = format!(
        "{:08x} {body}
",
        crc32fast::hash(body.as_bytes())
    );
    {
        let _s = open(&dir);
    }
    write_journal(&dir, line.as_bytes());
    let (mut s, changes) = open_loaded(&dir);
    let mut expected = token("old", 0x11);
    expected.name = "old".into();
    expected.indices = vec!["*".into()];
    expected.created_at = 1;
    assert_eq!(changes, vec![Change::PutToken { token: expected }]);
    let mut rotated = token("new", 2);
    rotated.previous_secret = Some(Box::new(crate::store::model::PreviousSecret {
        hash: SecretHash([3; 32]),
        expires_at: 5_000,
    }));
    rotated.limits.max_size = Some(10);
    rotated.limits.search_timeout_ms = Some(1_500);
    append(
        &mut s,
        &[Change::PutToken {
            token: rotated.clone(),
        }],
    );
    s.compact().expect("compaction");
    drop(s);
    let (_s, changes) = open_loaded(&dir);
    let mut snap = Snapshot::default();
    for c in &changes {
        snap.apply(c);
    }
    assert_eq!(**snap.token("new").unwrap(), rotated);
    assert_eq!(snap.token_by_hash(&SecretHash([3; 32])).unwrap().id, "new");
    assert_eq!(
        snap.token_by_secret(&SecretHash([3; 32]), 4_999)
            .unwrap()
            .id,
        "new"
    );
    assert!(snap.token_by_secret(&SecretHash([3; 32]), 5_000).is_none());
    assert_eq!(snap.token("old").unwrap().limits, Default::default());
}

fn link(id: &str, token: &str) -> Change {
    Change::PutLink {
        link: crate::store::model::Link {
            id: id.into(),
            token_id: token.into(),
            path: "/app/dashboards#/view/d1".into(),
            time: Some(crate::store::model::TimeRange {
                from: "2026-11-01T00:00:00Z".into(),
                to: "2026-11-02T00:00:00Z".into(),
            }),
            created_at: 5,
            expires_at: Some(99),
            secret_generation: "00112233aabbccdd".into(),
        },
    }
}

/// Share links (issue #16) survive a compaction and a reopen; a token's deletion takes its
/// links with it, in the journal and in the snapshot written after.
#[test]
fn links_survive_compaction_and_die_with_their_token() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    {
        let (mut s, _) = open_loaded(&dir);
        append(&mut s, &[put("a", 1), put("b", 2)]);
        append(&mut s, &[link("lnk_1", "a"), link("lnk_2", "b")]);
        append(&mut s, &[Change::DeleteToken { id: "b".into() }]);
        s.compact().expect("compact");
    }
    let (_s, loaded) = open_loaded(&dir);
    assert_eq!(state_of(&loaded), vec![put("a", 1), link("lnk_1", "a")]);
}

/// A token record written before `kibana_spaces` existed loads with `["default"]`.
#[test]
fn tokens_written_before_kibana_spaces_load_with_the_default_space() {
    let mut v = serde_json::to_value(put("a", 1)).expect("serialise");
    v["token"]
        .as_object_mut()
        .expect("token object")
        .remove("kibana_spaces");
    let c: Change = serde_json::from_value(v).expect("old record loads");
    assert_eq!(c, put("a", 1));
}

#[test]
fn changes_round_trip_through_reopen() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let history = vec![
        vec![
            Change::PutIpFilter {
                ip_filter: IpFilter {
                    name: "office".into(),
                    cidrs: vec!["192.0.2.0/24".parse().expect("cidr")],
                    created_at: 1,
                },
            },
            Change::PutFilter {
                filter: LibraryFilter {
                    id: "f1".into(),
                    description: "tenant a".into(),
                    field: "tenant".into(),
                    value: "a\nb \"quoted\" ünï".into(),
                    created_at: 2,
                },
            },
        ],
        vec![put("a", 1), put("b", 2)],
        vec![Change::LastUsed {
            times: vec![("a".into(), 42)],
        }],
        vec![Change::DeleteToken { id: "b".into() }],
    ];
    {
        let (mut s, loaded) = open_loaded(&dir);
        assert!(loaded.is_empty());
        for changes in &history {
            append(&mut s, changes);
        }
    }
    let all: Vec<Change> = history.concat();
    let (_s, loaded) = open_loaded(&dir);
    assert_eq!(loaded, all);
    assert_eq!(String::from_utf8_lossy(&journal(&dir)).lines().count(), 4);
}

#[test]
fn reopen_after_many_appends_keeps_every_one() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let mut expected = Vec::new();
    for round in 0..3u8 {
        let (mut s, loaded) = open_loaded(dir);
        assert_eq!(state_of(&loaded), state_of(&expected), "round {round}");
        for i in 0..200u32 {
            let c = put(&format!("t{round}-{i}"), (i % 250) as u8);
            append(&mut s, std::slice::from_ref(&c));
            expected.push(c);
        }
    }
    let (_s, loaded) = open_loaded(dir);
    assert_eq!(loaded, expected);
}

#[test]
fn compaction_then_reopen_keeps_the_state_and_empties_the_journal() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let mut expected = Vec::new();
    {
        let (mut s, _) = open_loaded(dir);
        s.set_compaction_thresholds(10, u64::MAX);
        for i in 0..25u8 {
            let mut batch = vec![put(&format!("t{i}"), i)];
            if i % 3 == 0 {
                batch.push(Change::DeleteToken {
                    id: format!("t{}", i / 2),
                });
            }
            if i % 4 == 0 {
                batch.push(Change::LastUsed {
                    times: vec![(format!("t{i}"), i64::from(i) * 10)],
                });
            }
            append(&mut s, &batch);
            expected.extend(batch);
        }
        // 25 records with a threshold of 10: compacted twice, 5 records left.
        assert_eq!(s.journal_records, 5);
    }
    let snap: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join(SNAPSHOT)).expect("snapshot")).expect("json");
    assert_eq!(snap["version"], 2);
    assert_eq!(snap["seq"], 20);
    // The base record naming snapshot 20, then the 5 records after it.
    let text = String::from_utf8(journal(dir)).expect("utf8");
    assert_eq!(text.lines().count(), 6, "{text}");
    assert_eq!(
        decode_record(text.lines().next().unwrap().as_bytes()),
        Ok((20, vec![]))
    );
    let (_s, loaded) = open_loaded(dir);
    assert_eq!(state_of(&loaded), state_of(&expected));
    assert!(state_of(&loaded)
        .iter()
        .any(|c| matches!(c, Change::LastUsed { .. })));
}

#[test]
fn compaction_by_size_is_triggered() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut s, _) = open_loaded(tmp.path());
    s.set_compaction_thresholds(u64::MAX, 2_000);
    for i in 0..20u8 {
        append(&mut s, &[put(&format!("t{i}"), i)]);
    }
    assert!(s.journal_len < 2_000);
    assert!(tmp.path().join(SNAPSHOT).exists());
    drop(s);
    let (_s, loaded) = open_loaded(tmp.path());
    assert_eq!(state_of(&loaded).len(), 20);
}

#[test]
fn crash_between_snapshot_rename_and_journal_truncation_is_harmless() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let mut expected = Vec::new();
    {
        let (mut s, _) = open_loaded(dir);
        for i in 0..8u8 {
            let c = put(&format!("t{i}"), i);
            append(&mut s, std::slice::from_ref(&c));
            expected.push(c);
        }
        let before = journal(dir);
        if let Err(e) = s.compact() {
            panic!("{e}");
        }
        // Undo the truncation, as if the crash came right before it.
        drop(s);
        write_journal(dir, &before);
    }
    {
        let (mut s, loaded) = open_loaded(dir);
        assert_eq!(state_of(&loaded), state_of(&expected));
        let c = Change::DeleteToken { id: "t3".into() };
        append(&mut s, std::slice::from_ref(&c));
        expected.push(c);
    }
    let (_s, loaded) = open_loaded(dir);
    assert_eq!(state_of(&loaded), state_of(&expected));
    assert!(!state_of(&loaded)
        .iter()
        .any(|c| matches!(c, Change::PutToken { token } if token.id == "t3")));
}

#[test]
fn torn_last_record_is_dropped_and_later_appends_work() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    {
        let (mut s, _) = open_loaded(dir);
        append(&mut s, &[put("a", 1)]);
        append(&mut s, &[put("b", 2)]);
    }
    let good = journal(dir);
    let next = encode_record(3, &[put("c", 3)]).expect("encode");
    let torn_tails: Vec<Vec<u8>> = vec![
        next[..next.len() / 2].to_vec(), // half a record
        next[..next.len() - 2].to_vec(), // all but the closing bracket and newline
        next[..5].to_vec(),              // part of the checksum
        vec![0u8; 40],                   // zero-filled tail
        {
            let mut v = next[..next.len() / 2].to_vec();
            v.extend_from_slice(&[0u8; 100]); // written prefix, then a zeroed block
            v
        },
    ];
    for tail in torn_tails {
        let mut data = good.clone();
        data.extend_from_slice(&tail);
        write_journal(dir, &data);
        {
            let (mut s, loaded) = open_loaded(dir);
            assert_eq!(loaded, vec![put("a", 1), put("b", 2)], "tail {tail:?}");
            assert_eq!(journal(dir), good, "file truncated to the good prefix");
            append(&mut s, &[put("c", 3)]);
        }
        let (_s, loaded) = open_loaded(dir);
        assert_eq!(loaded, vec![put("a", 1), put("b", 2), put("c", 3)]);
        write_journal(dir, &good);
    }
}

/// Issue #9 item 4: a complete last record that fails its checksum may have been
/// acknowledged (a DELETE): dropping it would undo it. The start stops instead.
#[test]
fn complete_last_record_failing_its_checksum_stops_the_load() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    {
        let (mut s, _) = open_loaded(dir);
        append(&mut s, &[put("a", 1)]);
        append(&mut s, &[Change::DeleteToken { id: "a".into() }]);
    }
    let good = journal(dir);
    let last_start = good[..good.len() - 1]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let corrupt_tails: Vec<(&str, Vec<u8>)> = vec![
        ("flipped bit in the JSON", {
            let mut v = good.clone();
            v[good.len() - 6] ^= 0x01;
            v
        }),
        ("flipped bit in the checksum", {
            let mut v = good.clone();
            v[last_start + 2] ^= 0x01;
            v
        }),
        ("flipped bit, newline missing", {
            let mut v = good[..good.len() - 1].to_vec();
            v[good.len() - 6] ^= 0x01;
            v
        }),
        ("empty last line", {
            let mut v = good.clone();
            v.push(b'\n');
            v
        }),
        ("garbage without newline", {
            let mut v = good.clone();
            v.extend_from_slice(b"hello");
            v
        }),
    ];
    for (name, data) in corrupt_tails {
        write_journal(dir, &data);
        let mut s = open(dir);
        match s.load() {
            Err(StoreError::Corrupt { reason, .. }) => assert!(!reason.is_empty()),
            Err(e) => panic!("{name}: wrong error {e}"),
            Ok(c) => panic!("{name}: loaded {} changes", c.len()),
        }
        assert_eq!(journal(dir), data, "{name}: the file is left alone");
    }
}

#[test]
fn complete_last_record_lacking_only_its_newline_is_kept() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    {
        let (mut s, _) = open_loaded(dir);
        append(&mut s, &[put("a", 1)]);
        append(&mut s, &[Change::DeleteToken { id: "a".into() }]);
    }
    let good = journal(dir);
    write_journal(dir, &good[..good.len() - 1]);
    {
        let (mut s, loaded) = open_loaded(dir);
        assert_eq!(
            loaded,
            vec![put("a", 1), Change::DeleteToken { id: "a".into() }]
        );
        assert_eq!(journal(dir), good, "the newline is added back");
        append(&mut s, &[put("b", 2)]);
    }
    let (_s, loaded) = open_loaded(dir);
    assert_eq!(loaded.len(), 3);
}

#[test]
fn tails_are_classified_as_complete_torn_or_corrupt() {
    let rec = encode_record(7, &[put("a", 1)]).expect("encode");
    let line = &rec[..rec.len() - 1];
    let flipped = |i: usize| {
        let mut v = line.to_vec();
        v[i] ^= 0x01;
        v
    };
    assert!(matches!(classify_tail(line), Tail::Complete(7, _)));
    for torn in [
        &b""[..],
        &line[..3],
        &line[..8],
        &line[..9],
        &line[..11],
        &line[..12],
        &line[..line.len() - 1],
        &[0u8; 16][..],
    ] {
        assert_eq!(classify_tail(torn), Tail::Torn, "{torn:?}");
    }
    for corrupt in [
        flipped(line.len() - 3),
        flipped(0),
        flipped(10),
        b"xyz".to_vec(),
        b"0000000 1 []".to_vec(),
        [&line[..20], &b"\0\0junk"[..]].concat(),
    ] {
        assert!(
            matches!(classify_tail(&corrupt), Tail::Corrupt(_)),
            "{}",
            String::from_utf8_lossy(&corrupt)
        );
    }
}

#[test]
fn journal_cut_at_any_byte_loads_the_complete_records_before_the_cut() {
    let records: Vec<Vec<Change>> = (0..4u8)
        .map(|i| {
            vec![
                put(&format!("t{i}"), i),
                Change::DeleteToken { id: "x".into() },
            ]
        })
        .collect();
    let mut data = Vec::new();
    let mut ends = Vec::new();
    for (i, r) in records.iter().enumerate() {
        data.extend(encode_record(i as u64 + 1, r).expect("encode"));
        ends.push(data.len());
    }
    for cut in 0..=data.len() {
        // A record cut just before its newline is complete (kept); any earlier cut is torn.
        let complete = ends.iter().filter(|&&e| e - 1 <= cut).count();
        let scan = match scan_journal(&data[..cut], 0) {
            Ok(s) => s,
            Err(e) => panic!("cut at {cut}: {e:?}"),
        };
        assert_eq!(scan.changes, records[..complete].concat(), "cut at {cut}");
        assert_eq!(
            scan.valid_len,
            if complete == 0 {
                0
            } else {
                (ends[complete - 1] as u64).min(cut as u64)
            }
        );
        assert_eq!(
            scan.missing_newline,
            ends.contains(&(cut + 1)),
            "cut at {cut}"
        );
    }
}

#[test]
fn any_single_byte_change_in_an_early_record_is_detected() {
    let mut data = Vec::new();
    for i in 0..3u8 {
        data.extend(encode_record(u64::from(i) + 1, &[put(&format!("t{i}"), i)]).expect("encode"));
    }
    let first_len = data.iter().position(|&b| b == b'\n').unwrap_or(0) + 1;
    for pos in 0..first_len {
        for flip in [0x01u8, 0x20, 0x80] {
            let mut bad = data.clone();
            bad[pos] ^= flip;
            assert!(
                matches!(scan_journal(&bad, 0), Err((1, _))),
                "flip {flip:#x} at {pos} not detected"
            );
        }
    }
}

proptest::proptest! {
    #[test]
    fn scanning_arbitrary_bytes_never_panics(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
        let _ = scan_journal(&data, 0);
        let _ = scan_journal(&data, 5);
    }

    /// A journal of whole records with one byte changed or the rest cut off at any place:
    /// never a panic, and what loads is a prefix of the records written, never a changed or
    /// an invented one. Arbitrary bytes (the property above) almost never frame a record, so
    /// they stop before the checksum, sequence and change readings this one reaches.
    #[test]
    fn a_damaged_journal_loads_only_a_prefix_of_its_records(
        n in 1u8..4,
        at in proptest::prelude::any::<proptest::sample::Index>(),
        byte in proptest::prelude::any::<u8>(),
        cut in proptest::prelude::any::<bool>(),
    ) {
        let written: Vec<Change> = (0..n).map(|i| put(&format!("t{i}"), i)).collect();
        let mut data = Vec::new();
        for (i, change) in written.iter().enumerate() {
            data.extend(encode_record(i as u64 + 1, std::slice::from_ref(change)).expect("encode"));
        }
        let i = at.index(data.len());
        if cut {
            data.truncate(i);
        } else {
            data[i] = byte;
        }
        if let Ok(scan) = scan_journal(&data, 0) {
            proptest::prop_assert!(written.starts_with(&scan.changes), "{:?}", String::from_utf8_lossy(&data));
        }
    }
}

#[test]
fn bad_record_followed_by_good_ones_is_corruption() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    {
        let (mut s, _) = open_loaded(dir);
        for i in 0..4u8 {
            append(&mut s, &[put(&format!("t{i}"), i)]);
        }
    }
    let good = journal(dir);
    let lines: Vec<&[u8]> = good.split_inclusive(|&b| b == b'\n').collect();
    assert_eq!(lines.len(), 4);

    // Flip one byte inside record 2.
    let mut bad = good.clone();
    bad[lines[0].len() + 20] ^= 0x01;
    // A torn record 2 (no newline) followed by records 3 and 4.
    let mut torn = lines[0].to_vec();
    torn.extend_from_slice(&lines[1][..10]);
    torn.extend_from_slice(lines[2]);
    torn.extend_from_slice(lines[3]);
    // Record 2 dropped: the sequence jumps from 1 to 3.
    let mut gap = lines[0].to_vec();
    gap.extend_from_slice(lines[2]);
    gap.extend_from_slice(lines[3]);
    // Records swapped.
    let mut swapped = lines[0].to_vec();
    swapped.extend_from_slice(lines[2]);
    swapped.extend_from_slice(lines[1]);
    swapped.extend_from_slice(lines[3]);

    for (name, data) in [
        ("flipped", bad),
        ("torn", torn),
        ("gap", gap),
        ("swapped", swapped),
    ] {
        write_journal(dir, &data);
        let mut s = open(dir);
        match s.load() {
            Err(StoreError::Corrupt { record: 2, .. }) => {}
            Err(e) => panic!("{name}: wrong error {e}"),
            Ok(c) => panic!("{name}: loaded {} changes from a corrupt journal", c.len()),
        }
        // The file is left alone for the operator.
        assert_eq!(journal(dir), data, "{name}");
    }
}

#[test]
fn a_damaged_record_names_where_to_cut_and_the_cut_loads_the_records_before_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    {
        let (mut s, _) = open_loaded(dir);
        for i in 0..4u8 {
            append(&mut s, &[put(&format!("t{i}"), i)]);
        }
    }
    let mut data = journal(dir);
    let first_two = data
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'\n')
        .nth(1)
        .map(|(i, _)| i + 1)
        .expect("two records");
    data[first_two + 20] ^= 0x01;
    write_journal(dir, &data);
    let message = match open(dir).load() {
        Err(e @ StoreError::Corrupt { record: 3, .. }) => e.to_string(),
        other => panic!("expected record 3 refused, got {other:?}"),
    };
    let cut = format!("truncate -s {first_two} journal.log");
    assert!(message.contains(&cut), "{message}");
    assert!(
        message.contains("the 2 record(s) before this one"),
        "{message}"
    );
    assert!(message.contains("backup"), "{message}");
    // attack17c: cutting undoes the revocations among the lost records; the message says so.
    assert!(
        message.contains("revoked or deleted by them is valid again"),
        "{message}"
    );

    // Doing what it says keeps exactly the records before the damaged one.
    data.truncate(first_two);
    write_journal(dir, &data);
    let (_, changes) = open_loaded(dir);
    assert_eq!(changes, vec![put("t0", 0), put("t1", 1)]);
}

#[test]
fn a_corrupt_file_as_a_whole_is_not_said_to_be_at_a_record() {
    let error = StoreError::Corrupt {
        path: "/s/snapshot.json".into(),
        record: 0,
        reason: "r".into(),
    };
    assert_eq!(
        error.to_string(),
        "store file /s/snapshot.json is corrupt: r"
    );
}

#[test]
fn journal_continuing_a_missing_snapshot_is_corruption() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    {
        let (mut s, _) = open_loaded(dir);
        s.set_compaction_thresholds(3, u64::MAX);
        for i in 0..5u8 {
            append(&mut s, &[put(&format!("t{i}"), i)]);
        }
    }
    fs::remove_file(dir.join(SNAPSHOT)).expect("remove snapshot");
    let mut s = open(dir);
    assert!(matches!(
        s.load(),
        Err(StoreError::Corrupt { record: 1, .. })
    ));
}

/// rel16: a compaction left an empty journal, so a snapshot lost after it (deleted, or left out
/// of a restore) loaded as an empty store, silently: every token gone. The journal now keeps a
/// base record naming the snapshot it continues, and a journal continuing a missing snapshot
/// is refused.
/// The store in `dir` opened, `changes` appended as one record, then compacted; left open for
/// what follows.
fn compacted_with(dir: &Path, changes: &[Change]) -> FileStore {
    let (mut s, _) = open_loaded(dir);
    append(&mut s, changes);
    if let Err(e) = s.compact() {
        panic!("{e}");
    }
    s
}

#[test]
fn a_snapshot_lost_after_a_compaction_is_refused_not_an_empty_store() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    drop(compacted_with(dir, &[put("a", 1)]));
    // With nothing after the compaction, and with a record after it.
    for more in [false, true] {
        let saved = fs::read(dir.join(SNAPSHOT)).expect("snapshot");
        if more {
            let (mut s, _) = open_loaded(dir);
            append(&mut s, &[put("b", 2)]);
        }
        fs::remove_file(dir.join(SNAPSHOT)).expect("remove snapshot");
        match open(dir).load() {
            Err(StoreError::Corrupt {
                record: 1, reason, ..
            }) => {
                assert!(reason.contains("snapshot"), "{reason}")
            }
            other => panic!("more={more}: {:?}", other.map(|c| c.len())),
        }
        fs::write(dir.join(SNAPSHOT), saved).expect("restore snapshot");
    }
    let (_s, loaded) = open_loaded(dir);
    assert_eq!(state_of(&loaded), state_of(&[put("a", 1), put("b", 2)]));
}

/// rel16: a crash while a compaction writes its base record leaves the journal empty, or the
/// record cut anywhere, or whole without its newline: each loads the snapshot's state, and
/// appends after it load too.
#[test]
fn a_base_record_cut_by_a_crash_at_any_byte_loads() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    {
        let (mut s, _) = open_loaded(dir);
        append(&mut s, &[put("a", 1), put("b", 2)]);
        append(&mut s, &[Change::DeleteToken { id: "a".into() }]);
        if let Err(e) = s.compact() {
            panic!("{e}");
        }
    }
    let base = journal(dir);
    assert_eq!(decode_record(&base[..base.len() - 1]), Ok((2, vec![])));
    for cut in 0..base.len() {
        write_journal(dir, &base[..cut]);
        // A crash before the base record is durable comes before `journal.base` names it.
        let _ = fs::remove_file(dir.join(JOURNAL_BASE));
        {
            let (mut s, loaded) = open_loaded(dir);
            assert_eq!(state_of(&loaded), state_of(&[put("b", 2)]), "cut at {cut}");
            append(&mut s, &[put("c", 3)]);
        }
        let (_s, loaded) = open_loaded(dir);
        assert_eq!(
            state_of(&loaded),
            state_of(&[put("b", 2), put("c", 3)]),
            "cut at {cut}"
        );
    }
}

/// rel16: a journal missing beside its snapshot (deleted: it is named `.log`) was created
/// anew, silently dropping every change made since the last compaction, revocations among
/// them. A crash never leaves that (the journal exists before the first snapshot is written,
/// and a compaction empties it, never removes it), so it is refused; an empty journal put
/// there accepts the snapshot alone, as a store compacted by an older esgate is.
#[test]
fn a_journal_missing_beside_its_snapshot_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    {
        let mut s = compacted_with(dir, &[put("a", 1), put("b", 2)]);
        append(&mut s, &[Change::DeleteToken { id: "a".into() }]);
    }
    fs::remove_file(dir.join(JOURNAL)).expect("remove journal");
    match open(dir).load() {
        Err(StoreError::Corrupt { reason, .. }) => {
            assert!(reason.contains("journal"), "{reason}")
        }
        other => panic!("{:?}", other.map(|c| c.len())),
    }
    assert!(!dir.join(JOURNAL).exists(), "nothing created");
    write_journal(dir, b"");
    // Created empty, it is refused while `journal.base` says a base record was there.
    assert!(matches!(open(dir).load(), Err(StoreError::Corrupt { .. })));
    fs::remove_file(dir.join(JOURNAL_BASE)).expect("remove journal.base");
    let (_s, loaded) = open_loaded(dir);
    assert_eq!(state_of(&loaded), state_of(&[put("a", 1), put("b", 2)]));
}

#[test]
fn unreadable_snapshot_is_corruption() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    for body in [
        &b"{\"version\":1,\"seq\":3,\"changes\":["[..],
        b"{\"version\":3,\"seq\":3,\"changes\":[]}",
        b"{\"version\":2,\"seq\":3,\"changes\":[]}",
        b"{\"version\":1,\"seq\":3,\"changes\":[],\"extra\":1}",
        b"",
    ] {
        fs::write(dir.join(SNAPSHOT), body).expect("write");
        let mut s = open(dir);
        assert!(
            matches!(s.load(), Err(StoreError::Corrupt { record: 0, .. })),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

/// Issue #9 item 5: one flipped bit in the snapshot moved a token to another tenant's
/// documents. Every single-bit change of the file is refused.
#[test]
fn any_flipped_bit_in_the_snapshot_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    {
        let (mut s, _) = open_loaded(dir);
        append(&mut s, &[put("a", 1), put("b", 2)]);
        s.compact().expect("compact");
    }
    let good = fs::read(dir.join(SNAPSHOT)).expect("read");
    for pos in 0..good.len() {
        for bit in 0..8 {
            let mut bad = good.clone();
            bad[pos] ^= 1 << bit;
            fs::write(dir.join(SNAPSHOT), &bad).expect("write");
            let mut s = open(dir);
            assert!(
                s.load().is_err(),
                "flip of bit {bit} at byte {pos} was accepted"
            );
        }
    }
    fs::write(dir.join(SNAPSHOT), &good).expect("write");
    let (_s, loaded) = open_loaded(dir);
    assert_eq!(state_of(&loaded), vec![put("a", 1), put("b", 2)]);
}

#[test]
fn unchecked_version_1_snapshot_is_read_and_rewritten_with_a_checksum() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let changes = serde_json::to_string(&[put("a", 1)]).expect("encode");
    fs::write(
        dir.join(SNAPSHOT),
        format!("{{\"version\":1,\"seq\":4,\"changes\":{changes}}}"),
    )
    .expect("write");
    // Compacted, as every store with a snapshot is: the journal emptied, not removed.
    write_journal(dir, b"");
    {
        let (_s, loaded) = open_loaded(dir);
        assert_eq!(loaded, vec![put("a", 1)]);
    }
    let text = fs::read_to_string(dir.join(SNAPSHOT)).expect("read");
    assert!(
        text.starts_with("{\"version\":2,\"seq\":4,\"sha256\":"),
        "{text}"
    );
    let (_s, loaded) = open_loaded(dir);
    assert_eq!(loaded, vec![put("a", 1)]);
}

#[test]
fn failed_append_is_rolled_back_and_not_visible() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    {
        let (mut s, _) = open_loaded(dir);
        append(&mut s, &[put("a", 1)]);
        let before = journal(dir);
        s.fail_next_write = Some(FailWrite { after_bytes: 17 });
        assert!(matches!(
            s.append(&[put("b", 2)]),
            Err(StoreError::Io { .. })
        ));
        assert_eq!(journal(dir), before, "partial record cut off");
        append(&mut s, &[put("c", 3)]);
    }
    let (_s, loaded) = open_loaded(dir);
    assert_eq!(loaded, vec![put("a", 1), put("c", 3)]);
}

#[test]
fn poisoned_journal_is_recovered_by_compaction_on_the_next_append() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    {
        let (mut s, _) = open_loaded(dir);
        append(&mut s, &[put("a", 1)]);
        // As if a write failed and the rollback failed too: garbage stays at the tail.
        {
            let j = s.journal.as_mut().expect("journal open");
            j.write_all(b"4f00 2 [{\"op\":").expect("write garbage");
        }
        s.poisoned = true;
        append(&mut s, &[put("b", 2)]);
        assert!(!s.poisoned);
    }
    let (_s, loaded) = open_loaded(dir);
    assert_eq!(state_of(&loaded), state_of(&[put("a", 1), put("b", 2)]));
    let text = String::from_utf8(journal(dir)).expect("utf8");
    assert!(
        !text.contains("4f00"),
        "garbage left in the journal: {text}"
    );
}

#[test]
fn append_before_load_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut s = open(tmp.path());
    assert!(s.append(&[put("a", 1)]).is_err());
    assert!(s.compact().is_err());
}

#[test]
fn second_open_of_a_locked_store_fails_until_the_first_is_dropped() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let first = open(tmp.path());
    match FileStore::open(tmp.path()) {
        Err(StoreError::Io { source, .. }) => {
            assert_eq!(source.kind(), io::ErrorKind::WouldBlock);
            assert!(source.to_string().contains("another esgate process"));
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("two stores opened the same directory"),
    }
    drop(first);
    assert!(FileStore::open(tmp.path()).is_ok());
}

#[test]
fn stale_snapshot_tmp_is_removed_on_open() {
    let tmp = tempfile::tempdir().expect("tempdir");
    fs::write(tmp.path().join(SNAPSHOT_TMP), b"{half").expect("write");
    let (_s, loaded) = open_loaded(tmp.path());
    assert!(loaded.is_empty());
    assert!(!tmp.path().join(SNAPSHOT_TMP).exists());
}

#[cfg(unix)]
#[test]
fn directory_and_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("a").join("store");
    let (mut s, _) = open_loaded(&dir);
    s.set_compaction_thresholds(1, u64::MAX);
    append(&mut s, &[put("a", 1)]);
    let mode = |p: &Path| fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    for f in [JOURNAL, SNAPSHOT, LOCK] {
        assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
    }
}

#[test]
fn record_checksum_covers_the_sequence_number() {
    let line = encode_record(7, &[put("a", 1)]).expect("encode");
    let text = String::from_utf8(line).expect("utf8");
    let body = text.trim_end_matches('\n');
    assert!(decode_record(body.as_bytes()).is_ok());
    let altered = body.replacen(" 7 ", " 8 ", 1);
    assert_eq!(
        decode_record(altered.as_bytes()),
        Err("checksum mismatch".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_updates_through_store_all_survive_reopen() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().to_owned();
    {
        let mut fs_store = open(&dir);
        // Low thresholds so compactions run in between concurrent writes.
        fs_store.set_compaction_thresholds(7, u64::MAX);
        let store = match Store::open(Box::new(fs_store)) {
            Ok(s) => Arc::new(s),
            Err(e) => panic!("{e}"),
        };
        let mut tasks = Vec::new();
        for i in 0..64u8 {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                store
                    .update(|_| Ok::<_, StoreError>((vec![put(&format!("t{i}"), i)], ())))
                    .await
            }));
        }
        for t in tasks {
            match t.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => panic!("update failed: {e}"),
                Err(e) => panic!("task failed: {e}"),
            }
        }
        assert_eq!(store.snapshot().tokens().count(), 64);
    }
    let store = match Store::open(Box::new(open(&dir))) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let snap = store.snapshot();
    for i in 0..64u8 {
        let t = snap.token(&format!("t{i}"));
        assert_eq!(t.map(|t| t.secret_hash), Some(SecretHash([i; 32])), "t{i}");
    }
}

/// Environment variable that turns the SIGKILL test into its own writer child.
const CRASH_CHILD_DIR: &str = "ESGATE_TEST_CRASH_CHILD_DIR";

/// Child mode: many concurrent writers through `Store`, printing `ack <id>` after each
/// acknowledged write, until killed.
fn crash_child(dir: &Path, round: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut fs_store = open(dir);
        fs_store.set_compaction_thresholds(40, u64::MAX);
        let store = Arc::new(Store::open(Box::new(fs_store)).expect("store opens"));
        let mut tasks = Vec::new();
        for w in 0..8u32 {
            let store = Arc::clone(&store);
            let round = round.to_owned();
            tasks.push(tokio::spawn(async move {
                for i in 0u32.. {
                    let id = format!("r{round}-w{w}-{i}");
                    let change = put(&id, (i % 200) as u8);
                    store
                        .update(|_| Ok::<_, StoreError>((vec![change], ())))
                        .await
                        .expect("update");
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ack {id}").expect("stdout");
                    out.flush().expect("flush");
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
}

#[test]
fn sigkill_during_concurrent_writes_loses_no_acknowledged_change() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};

    if let Ok(dir) = std::env::var(CRASH_CHILD_DIR) {
        let round = std::env::var("ESGATE_TEST_CRASH_ROUND").unwrap_or_default();
        crash_child(Path::new(&dir), &round);
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("test binary");
    let mut acked: Vec<String> = Vec::new();
    for (round, kill_after) in [(0, 150usize), (1, 333), (2, 57), (3, 500)] {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "store::file::tests::sigkill_during_concurrent_writes_loses_no_acknowledged_change",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CRASH_CHILD_DIR, tmp.path())
            .env("ESGATE_TEST_CRASH_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("child stdout");
        let mut seen = 0;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(id) = line.strip_prefix("ack ") {
                acked.push(id.to_owned());
                seen += 1;
                if seen >= kill_after {
                    break;
                }
            }
        }
        child.kill().expect("SIGKILL the child");
        let _ = child.wait();
        assert!(
            seen >= kill_after,
            "round {round}: child stopped after {seen} acks"
        );

        let (_s, loaded) = open_loaded(tmp.path());
        let state = state_of(&loaded);
        let ids: std::collections::HashSet<&str> = state
            .iter()
            .filter_map(|c| match c {
                Change::PutToken { token } => Some(token.id.as_str()),
                _ => None,
            })
            .collect();
        let lost: Vec<&String> = acked
            .iter()
            .filter(|id| !ids.contains(id.as_str()))
            .collect();
        assert!(
            lost.is_empty(),
            "round {round}: lost {} acknowledged changes: {lost:?}",
            lost.len()
        );
    }
}

/// Review 16e: a journal emptied behind a running esgate (logrotate's `copytruncate`; the
/// journal's name ends in `.log`) had the next record written at its start, continuing a
/// sequence whose records were gone: the next start refused the store ("records are
/// missing"). An append that finds the journal changed since it last wrote it now writes the
/// state (which holds every acknowledged change) as a snapshot first: nothing is lost.
#[test]
fn a_journal_emptied_behind_the_store_is_rewritten_from_the_state_on_the_next_append() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    {
        let mut s = compacted_with(dir, &[put("a", 1)]);
        append(&mut s, &[put("b", 2)]);
        append(&mut s, &[put("c", 3)]);
        // What copytruncate does: copy the file away, then cut it to nothing in place.
        OpenOptions::new()
            .write(true)
            .open(dir.join(JOURNAL))
            .and_then(|f| f.set_len(0))
            .expect("truncate");
        append(&mut s, &[put("d", 4)]);
    }
    let (_s, loaded) = open_loaded(dir);
    assert_eq!(
        state_of(&loaded),
        state_of(&[put("a", 1), put("b", 2), put("c", 3), put("d", 4)])
    );
}

/// Review 16e's open case: a journal emptied or replaced behind the store (logrotate's
/// `copytruncate`, or its rename and a fresh file) while esgate was stopped, or before its next
/// append, loaded as "nothing since the snapshot": every change since the last compaction lost
/// without a word, revocations among them. `journal.base` names the snapshot whose base record
/// the journal held: an empty journal beside that snapshot is refused, and deleting
/// `journal.base` accepts the snapshot alone. A stale number (an older esgate compacted since)
/// still loads an empty journal.
#[test]
fn a_journal_emptied_while_the_store_was_closed_is_refused() {
    for rotation in ["copytruncate", "rename and create"] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        {
            let mut s = compacted_with(dir, &[put("a", 1)]);
            append(&mut s, &[Change::DeleteToken { id: "a".into() }]);
        }
        match rotation {
            "copytruncate" => write_journal(dir, b""),
            _ => {
                fs::rename(dir.join(JOURNAL), dir.join("journal.log.1")).expect("rename");
                write_journal(dir, b"");
            }
        }
        match open(dir).load() {
            Err(StoreError::Corrupt { reason, .. }) => {
                assert!(reason.contains("journal.base"), "{rotation}: {reason}")
            }
            other => panic!("{rotation}: {:?}", other.map(|c| c.len())),
        }
        // The rotated copy put back: the deletion is there again.
        if rotation != "copytruncate" {
            fs::rename(dir.join("journal.log.1"), dir.join(JOURNAL)).expect("rename back");
            let (_s, loaded) = open_loaded(dir);
            assert_eq!(state_of(&loaded), state_of(&[]), "{rotation}");
            continue;
        }
        fs::write(dir.join(JOURNAL_BASE), b"0\n").expect("stale journal.base");
        let (s, loaded) = open_loaded(dir);
        assert_eq!(state_of(&loaded), state_of(&[put("a", 1)]), "{rotation}");
        drop(s);
        fs::remove_file(dir.join(JOURNAL_BASE)).expect("remove journal.base");
        let (_s, loaded) = open_loaded(dir);
        assert_eq!(state_of(&loaded), state_of(&[put("a", 1)]), "{rotation}");
    }
}

/// Review 16e: a journal moved away behind a running esgate (logrotate's default: rename, then
/// `create` an empty one) took every later record with it, and the next start read the empty
/// file beside the snapshot as "nothing since": every change since the last compaction lost
/// without a word, revocations among them. An append that finds another file (or none) at the
/// journal's path now writes the state as a snapshot and starts the journal there again.
#[cfg(unix)]
#[test]
fn a_journal_moved_behind_the_store_is_started_again_from_the_state_on_the_next_append() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    for create in [true, false] {
        {
            let mut s = compacted_with(dir, &[put("a", 1)]);
            append(&mut s, &[put("b", 2)]);
            fs::rename(dir.join(JOURNAL), dir.join("journal.log.1")).expect("rename");
            if create {
                fs::write(dir.join(JOURNAL), b"").expect("create");
            }
            append(&mut s, &[put("c", 3)]);
        }
        let (_s, loaded) = open_loaded(dir);
        assert_eq!(
            state_of(&loaded),
            state_of(&[put("a", 1), put("b", 2), put("c", 3)]),
            "create={create}"
        );
    }
}

/// docs/file-store.md's online backup: `journal.log` copied first, then `snapshot.json`, while
/// the store keeps writing and compacting, loads as a consistent store (what the journal held
/// at least, and at most what the snapshot held); the other order across a compaction is
/// refused at load, never a store missing changes without a word.
#[test]
fn a_backup_copying_the_journal_then_the_snapshot_loads_whole_under_any_compaction() {
    let copy = |from: &Path, to: &Path, name: &str| {
        if from.join(name).exists() {
            fs::copy(from.join(name), to.join(name)).expect("copy");
        }
    };
    let all: Vec<Change> = (0..6u8).map(|i| put(&format!("t{i}"), i)).collect();
    // Where the compaction falls: before the journal's copy, between the copies, after both.
    for compact_at in [1usize, 4, 6] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (live, backup) = (tmp.path().join("live"), tmp.path().join("backup"));
        fs::create_dir(&backup).expect("mkdir");
        let (mut s, _) = open_loaded(&live);
        for (i, change) in all.iter().enumerate() {
            append(&mut s, std::slice::from_ref(change));
            if i + 1 == compact_at {
                s.compact().expect("compact");
            }
            if i == 2 {
                copy(&live, &backup, JOURNAL);
            }
            if i == 4 {
                copy(&live, &backup, SNAPSHOT);
            }
        }
        drop(s);
        let (_, loaded) = open_loaded(&backup);
        let held = if compact_at == 4 { 4 } else { 3 };
        assert_eq!(
            state_of(&loaded),
            state_of(&all[..held]),
            "compaction after change {compact_at}"
        );
    }

    // The snapshot first, then the journal after a compaction: refused.
    let tmp = tempfile::tempdir().expect("tempdir");
    let (live, backup) = (tmp.path().join("live"), tmp.path().join("backup"));
    fs::create_dir(&backup).expect("mkdir");
    let mut s = compacted_with(&live, &all[..2]);
    copy(&live, &backup, SNAPSHOT);
    append(&mut s, &all[2..3]);
    s.compact().expect("compact");
    append(&mut s, &all[3..4]);
    copy(&live, &backup, JOURNAL);
    drop(s);
    assert!(matches!(
        open(&backup).load(),
        Err(StoreError::Corrupt { .. })
    ));
}
