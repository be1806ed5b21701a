//! Tests of the key ring: records, the cache, listings and the sweep.

#![allow(clippy::unwrap_used)]

use super::*;

fn scope() -> Scope {
    Scope { region: "us-east-1".into(), account_id: "000000000000".into() }
}

fn meta_for_test() -> KeyMeta {
    KeyMeta {
        key_id: "1234abcd-12ab-34cd-56ef-1234567890ab".into(),
        creation_date: 1.5,
        description: "d".into(),
        key_usage: KeyUsage::EncryptDecrypt,
        key_spec: KeySpec::SymmetricDefault,
        key_state: KeyState::Enabled,
        origin: Origin::AwsKms,
        tags: vec![("a".into(), "b".into())],
        policy: "{}".into(),
        deletion_date: None,
        pending_window_days: None,
        rotation_period_days: None,
        next_rotation_date: None,
        rotations: Vec::new(),
        imported: None,
        policy_principals: None,
        aws_managed: false,
    }
}

#[test]
fn record_round_trip_keeps_material() {
    let meta = meta_for_test();
    let key = Key {
        arn: String::new(),
        uuid: [0; 16],
        meta,
        record_version: 1,
        materials: vec![(1, Key256::from_slice(&[5; 32]).unwrap()), (2, Key256::from_slice(&[6; 32]).unwrap())],
        secret: None,
    };
    let bytes = key.encode().unwrap();
    let back = Key::decode(&bytes, 4, &scope()).unwrap();
    assert_eq!(back.record_version, 4);
    assert_eq!(back.current().unwrap().0, 2);
    assert_eq!(back.material(1).unwrap().expose_secret(), &[5; 32]);
    assert!(back.material(3).is_none());
    assert!(back.arn.ends_with("key/1234abcd-12ab-34cd-56ef-1234567890ab"));
    assert!(!format!("{back:?}").contains("5, 5"));
}

#[test]
fn asymmetric_and_hmac_records_round_trip() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for spec in [KeySpec::EccNistP256, KeySpec::Hmac384] {
        let secret = rt.block_on(Secret::generate(spec)).unwrap().map(Arc::new);
        let mut meta = meta_for_test();
        meta.key_spec = spec;
        let key = Key { arn: String::new(), uuid: [0; 16], meta, record_version: 1, materials: Vec::new(), secret };
        let bytes = key.encode().unwrap();
        let back = Key::decode(&bytes, 2, &scope()).unwrap();
        assert!(back.current().is_none());
        assert!(!back.is_symmetric());
        match spec {
            KeySpec::Hmac384 => {
                let alg = asym::MacAlgorithm::HmacSha384;
                let tag = key.hmac().unwrap().mac(alg, b"m").unwrap();
                assert!(back.hmac().unwrap().verify(alg, b"m", &tag).unwrap());
            }
            _ => assert_eq!(back.pair().unwrap().public_key_der(), key.pair().unwrap().public_key_der()),
        }
        // Listing reads the metadata without parsing the private key.
        assert!(Key::decode_with(&bytes, 2, &scope(), false).unwrap().secret.is_none());
    }
    // An asymmetric key record without its material, or with material of another spec, is refused.
    let mut meta = meta_for_test();
    meta.key_spec = KeySpec::EccNistP384;
    let hollow =
        Key { arn: String::new(), uuid: [0; 16], meta, record_version: 1, materials: Vec::new(), secret: None };
    assert!(Key::decode(&hollow.encode().unwrap(), 2, &scope()).is_err());
}

#[test]
fn equal_policies_share_one_copy() {
    let a = shared_policy("{\"Statement\":[]}");
    let b = shared_policy(&String::from("{\"Statement\":[]}"));
    assert!(Arc::ptr_eq(&a, &b));
    let c = shared_policy("{}");
    assert_eq!(&*c, "{}");
    assert!(!Arc::ptr_eq(&a, &c));
}

#[test]
fn garbage_records_are_refused() {
    assert!(Key::decode(&[0xff, 0x00], 1, &scope()).is_err());
    assert!(Key::decode(&[], 1, &scope()).is_err());
}

/// Issue 12 item 5: a reader that loaded a key before a DisableKey (or PutKeyPolicy) finished used to put the old
/// version back in the cache after the writer's, so the change never took effect until restart.
#[tokio::test]
async fn a_reader_that_loaded_before_an_update_cannot_cache_the_old_version() {
    let host = crate::state::fake_host::FakeHost::default();
    let ring = Keyring::new(host.records(), scope(), Arc::new(Clock::default()), 16);
    let id = ring.create(meta_for_test()).await.unwrap().meta.key_id.clone();
    let disable = |k: &mut Key| {
        k.meta.key_state = KeyState::Disabled;
        Ok(())
    };
    // The reader's read (cache miss) happens, then the writer's update, then the reader's cache insert.
    ring.purge(&id);
    let stale = Arc::new(ring.load(&id).await.unwrap().unwrap());
    ring.update(&id, disable).await.unwrap();
    assert!(!ring.remember(stale.clone()), "over a newer cached version");
    ring.purge(&id); // the newer version evicted or purged by another writer
    assert!(!ring.remember(stale), "below the record's high-water mark");
    assert_eq!(ring.get(&id).await.unwrap().unwrap().meta.key_state, KeyState::Disabled);
    // The same from version 2 to 3 (a record tracked by its marks from then on).
    let stale = Arc::new(ring.load(&id).await.unwrap().unwrap());
    ring.update(&id, |k| {
        k.meta.description = "third".into();
        Ok(())
    })
    .await
    .unwrap();
    ring.purge(&id);
    assert!(!ring.remember(stale));
    assert_eq!(ring.get(&id).await.unwrap().unwrap().meta.description, "third");
}

/// Issue 19 (found by the soak): many concurrent updates of one key all succeed, each applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_updates_of_one_key_all_succeed() {
    let host = crate::state::fake_host::FakeHost::default();
    let ring = Arc::new(Keyring::new(host.records(), scope(), Arc::new(Clock::default()), 16));
    let id = ring.create(meta_for_test()).await.unwrap().meta.key_id.clone();
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let (ring, id) = (ring.clone(), id.clone());
            tokio::spawn(async move {
                ring.update(&id, |k| {
                    k.meta.tags.push((format!("t{i}"), String::new()));
                    Ok(())
                })
                .await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    ring.purge(&id);
    let key = ring.get(&id).await.unwrap().unwrap();
    assert_eq!(key.meta.tags.len(), 33, "every update applied once");
    assert_eq!(key.record_version, 33);
}

/// Issue 12 item 18: one key record that fails its checks is skipped by ListKeys and the sweep, which go on.
#[tokio::test]
async fn a_bad_key_record_is_skipped_by_listing_and_sweep() {
    let host = crate::state::fake_host::FakeHost::default();
    let records = host.records();
    let ring = Keyring::new(records.clone(), scope(), Arc::new(Clock::default()), 16);
    let mut ids = Vec::new();
    for n in 0..3u8 {
        let mut meta = meta_for_test();
        meta.key_id = format!("1234abcd-12ab-34cd-56ef-12345678900{n}");
        ids.push(ring.create(meta).await.unwrap().meta.key_id.clone());
    }
    // A body that is sealed correctly but does not decode as a key.
    let bad = "1234abcd-12ab-34cd-56ef-123456789001".to_owned();
    let v = records.get(RecordKind::Key, &bad).await.unwrap().unwrap().version;
    records.put(RecordKind::Key, &bad, Some(v), b"not a key").await.unwrap();
    ring.purge(&bad);
    let (listed, last, more) = ring.list(None, 10).await.unwrap();
    assert_eq!(listed, [ids[0].clone(), ids[2].clone()]);
    assert_eq!((last.as_deref(), more), (Some(ids[2].as_str()), false));
    let (first, last, more) = ring.list(None, 2).await.unwrap();
    assert_eq!((first.len(), last.as_deref(), more), (1, Some(bad.as_str()), true), "paging continues past it");
    assert_eq!(ring.sweep().await.unwrap(), 0);
    assert!(records.skipped() >= 3);
    assert!(matches!(ring.get(&bad).await, Err(Error::Internal(_))), "the bad key fails on its own");
    assert!(ring.get(&ids[2]).await.unwrap().is_some());
}
