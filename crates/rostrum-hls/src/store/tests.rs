use std::sync::Arc;

use bytes::Bytes;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{Attribute, ObjectStoreExt};

use super::*;

fn local(dir: &std::path::Path) -> HlsStore {
    HlsStore::from_config(&StoreConfig::Local {
        dir: dir.to_path_buf(),
    })
    .expect("local store")
}

#[tokio::test]
async fn objects_land_under_the_design_layout_on_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let store = local(tmp.path());
    assert!(!store.keeps_attributes());
    store.put_master("stage", "#EXTM3U\n".into()).await.unwrap();
    store
        .put_media_playlist("stage", "720p", "#EXTM3U\n".into())
        .await
        .unwrap();
    store
        .put_vod("stage", "720p", "#EXTM3U\n".into())
        .await
        .unwrap();
    store
        .put_init("stage", "720p", 0, Bytes::from_static(b"i0"))
        .await
        .unwrap();
    store
        .put_init("stage", "720p", 2, Bytes::from_static(b"i2"))
        .await
        .unwrap();
    store
        .put_segment("stage", "720p", 17, Bytes::from_static(b"s"))
        .await
        .unwrap();
    store
        .put_part("stage", "720p", 17, 3, Bytes::from_static(b"p"))
        .await
        .unwrap();
    let mut files: Vec<String> = walk(tmp.path())
        .into_iter()
        .map(|p| {
            p.strip_prefix(tmp.path())
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "stage/720p/17.3.m4s",
            "stage/720p/17.m4s",
            "stage/720p/index.m3u8",
            "stage/720p/init-2.mp4",
            "stage/720p/init.mp4",
            "stage/720p/vod.m3u8",
            "stage/master.m3u8",
        ]
    );
    assert_eq!(
        std::fs::read(tmp.path().join("stage/720p/17.3.m4s")).unwrap(),
        b"p"
    );
    let got = store
        .get("stage", "720p", &HlsObject::Init(2))
        .await
        .unwrap();
    assert_eq!(got.as_deref(), Some(&b"i2"[..]));
    assert_eq!(
        store
            .get("stage", "720p", &HlsObject::Segment(18))
            .await
            .unwrap(),
        None
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn a_prefix_goes_in_front_of_every_key() {
    let tmp = tempfile::tempdir().unwrap();
    let store = local(tmp.path()).with_prefix("rec/2025").unwrap();
    store
        .put_segment("room-1", "720p", 0, Bytes::from_static(b"x"))
        .await
        .unwrap();
    assert!(tmp.path().join("rec/2025/room-1/720p/0.m4s").is_file());
    assert_eq!(
        store
            .key("room-1", "ignored", &HlsObject::Master)
            .unwrap()
            .as_ref(),
        "rec/2025/room-1/master.m3u8"
    );
    assert!(local(tmp.path()).with_prefix("a/../b").is_err());
}

#[test]
fn names_that_are_not_a_single_safe_segment_are_refused() {
    let store = HlsStore::new(Arc::new(InMemory::new()), true);
    for bad in ["", ".", "..", ".hidden", "a/b", "a\\b", "ä", "a b", "a%2Fb"] {
        assert!(
            matches!(
                store.key(bad, "720p", &HlsObject::Segment(0)),
                Err(StoreError::InvalidName(_))
            ),
            "room {bad:?}"
        );
        assert!(
            store.key("room", bad, &HlsObject::Segment(0)).is_err(),
            "rendition {bad:?}"
        );
    }
    assert!(store.key("Room_1.x-y", "720p", &HlsObject::Vod).is_ok());
    assert!(!is_valid_name(&"a".repeat(129)));
}

#[test]
fn file_names_parse_strictly_and_round_trip() {
    let objects = [
        HlsObject::Master,
        HlsObject::MediaPlaylist,
        HlsObject::Vod,
        HlsObject::Init(0),
        HlsObject::Init(7),
        HlsObject::Segment(0),
        HlsObject::Segment(123_456),
        HlsObject::Part { msn: 0, index: 0 },
        HlsObject::Part { msn: 42, index: 11 },
    ];
    for o in objects {
        assert_eq!(HlsObject::parse(&o.file_name()), Some(o), "{o:?}");
    }
    for bad in [
        "",
        "..",
        "../index.m3u8",
        "0.m4s/",
        "01.m4s",
        "1.01.m4s",
        "1.2.3.m4s",
        "-1.m4s",
        "+1.m4s",
        "1.m4s.",
        ".m4s",
        "1..m4s",
        "init-0.mp4",
        "init-01.mp4",
        "init.mp4x",
        "init-.mp4",
        "x.m4s",
        "18446744073709551616.m4s",
        "1.4294967296.m4s",
        "index.m3u8?x",
        "%2e%2e",
        "1.ts",
    ] {
        assert_eq!(HlsObject::parse(bad), None, "{bad:?}");
    }
}

#[test]
fn headers_follow_the_kind() {
    use HlsObject::*;
    for (o, ct, cc) in [
        (Master, PLAYLIST_CONTENT_TYPE, "public, max-age=1"),
        (MediaPlaylist, PLAYLIST_CONTENT_TYPE, "public, max-age=1"),
        (Vod, PLAYLIST_CONTENT_TYPE, VOD_CACHE_CONTROL),
        (Init(0), "video/mp4", "public, max-age=31536000, immutable"),
        (
            Segment(3),
            "video/iso.segment",
            "public, max-age=31536000, immutable",
        ),
        (
            Part { msn: 3, index: 1 },
            "video/iso.segment",
            "public, max-age=31536000, immutable",
        ),
    ] {
        assert_eq!((o.content_type(), o.cache_control()), (ct, cc), "{o:?}");
        let opts = o.put_options();
        assert_eq!(
            opts.attributes
                .get(&Attribute::ContentType)
                .map(|v| v.as_ref()),
            Some(ct)
        );
        assert_eq!(
            opts.attributes
                .get(&Attribute::CacheControl)
                .map(|v| v.as_ref()),
            Some(cc)
        );
    }
    assert_eq!(PLAYLIST_CONTENT_TYPE, "application/vnd.apple.mpegurl");
}

#[tokio::test]
async fn a_store_that_keeps_attributes_gets_content_type_and_cache_control() {
    let mem = Arc::new(InMemory::new());
    let store = HlsStore::new(mem.clone(), true);
    store
        .put_part("r", "720p", 5, 2, Bytes::from_static(b"part"))
        .await
        .unwrap();
    store
        .put_media_playlist("r", "720p", "#EXTM3U\n".into())
        .await
        .unwrap();
    let got = mem.get(&Path::from("r/720p/5.2.m4s")).await.unwrap();
    let attrs = got.attributes.clone();
    assert_eq!(
        attrs.get(&Attribute::ContentType).map(|v| v.as_ref()),
        Some("video/iso.segment")
    );
    assert_eq!(
        attrs.get(&Attribute::CacheControl).map(|v| v.as_ref()),
        Some("public, max-age=31536000, immutable")
    );
    let pl = mem.get(&Path::from("r/720p/index.m3u8")).await.unwrap();
    assert_eq!(
        pl.attributes
            .get(&Attribute::CacheControl)
            .map(|v| v.as_ref()),
        Some("public, max-age=1")
    );
}

#[test]
fn configs_deserialize_and_build_without_network() {
    let local: StoreConfig = serde_json::from_str(r#"{"kind":"local","dir":"/tmp/x"}"#).unwrap();
    assert_eq!(
        local,
        StoreConfig::Local {
            dir: "/tmp/x".into()
        }
    );
    let s3: StoreConfig = serde_json::from_str(
        r#"{"kind":"s3","endpoint":"http://127.0.0.1:3900","bucket":"hls","region":"garage",
            "access_key":"GK1","secret_key":"s","allow_http":true}"#,
    )
    .unwrap();
    let store = HlsStore::from_config(&s3).expect("builds offline");
    assert!(store.keeps_attributes());
    assert_eq!(
        StoreConfig::default(),
        StoreConfig::Local { dir: "hls".into() }
    );
}

/// Against a real S3-compatible server when one is configured (`scripts/test.sh`
/// starts garage through `scripts/garage.sh` and exports these); skipped
/// otherwise, except where a skip would hide a missing server: with `CI=true` or
/// `ROSTRUM_REQUIRE_S3=1` a missing configuration fails the test.
#[tokio::test]
async fn s3_round_trip_when_configured() {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let (Some(endpoint), Some(bucket), Some(access_key), Some(secret_key)) = (
        var("ROSTRUM_TEST_S3_ENDPOINT"),
        var("ROSTRUM_TEST_S3_BUCKET"),
        var("ROSTRUM_TEST_S3_ACCESS_KEY"),
        var("ROSTRUM_TEST_S3_SECRET_KEY"),
    ) else {
        let required = var("CI").is_some_and(|v| v == "true" || v == "1")
            || var("ROSTRUM_REQUIRE_S3").is_some_and(|v| v != "0");
        assert!(
            !required,
            "ROSTRUM_TEST_S3_{{ENDPOINT,BUCKET,ACCESS_KEY,SECRET_KEY}} not set, but CI/ROSTRUM_REQUIRE_S3 \
             asks for the S3 test: run it under `bash scripts/garage.sh run -- cargo test ...`"
        );
        eprintln!("skipped: ROSTRUM_TEST_S3_{{ENDPOINT,BUCKET,ACCESS_KEY,SECRET_KEY}} not set");
        return;
    };
    // A prefix of its own per run, so runs against a shared bucket never meet.
    let run = format!(
        "run-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let store = HlsStore::from_config(&StoreConfig::S3 {
        allow_http: endpoint.starts_with("http://"),
        endpoint: Some(endpoint),
        bucket,
        region: var("ROSTRUM_TEST_S3_REGION").unwrap_or_else(|| "garage".into()),
        access_key,
        secret_key,
    })
    .unwrap()
    .with_prefix(&format!("rostrum-hls-test/{run}"))
    .unwrap();
    assert!(store.keeps_attributes());

    // Media first, then the playlist that names it, as the session writes them.
    let init = Bytes::from_static(b"init bytes");
    let part = Bytes::from_static(b"part bytes");
    let body = Bytes::from_static(b"segment bytes");
    store
        .put_init("room", "720p", 0, init.clone())
        .await
        .unwrap();
    store
        .put_part("room", "720p", 9, 0, part.clone())
        .await
        .unwrap();
    store
        .put_segment("room", "720p", 9, body.clone())
        .await
        .unwrap();
    store
        .put_media_playlist("room", "720p", "#EXTM3U\n#v1\n".into())
        .await
        .unwrap();
    store.put_master("room", "#EXTM3U\n".into()).await.unwrap();

    // Bytes and both attributes come back for every kind of object.
    for (object, bytes) in [
        (HlsObject::Init(0), init),
        (HlsObject::Part { msn: 9, index: 0 }, part),
        (HlsObject::Segment(9), body),
        (
            HlsObject::MediaPlaylist,
            Bytes::from_static(b"#EXTM3U\n#v1\n"),
        ),
        (HlsObject::Master, Bytes::from_static(b"#EXTM3U\n")),
    ] {
        let key = store.key("room", "720p", &object).unwrap();
        let got = store.inner().get(&key).await.unwrap();
        let attr = |a: &Attribute| got.attributes.get(a).map(|v| v.as_ref().to_owned());
        assert_eq!(
            attr(&Attribute::ContentType).as_deref(),
            Some(object.content_type()),
            "{key}"
        );
        assert_eq!(
            attr(&Attribute::CacheControl).as_deref(),
            Some(object.cache_control()),
            "{key}"
        );
        assert_eq!(got.bytes().await.unwrap(), bytes, "{key}");
    }

    // A playlist is overwritten in place; a missing object reads as None.
    store
        .put_media_playlist("room", "720p", "#EXTM3U\n#v2\n".into())
        .await
        .unwrap();
    assert_eq!(
        store
            .get("room", "720p", &HlsObject::MediaPlaylist)
            .await
            .unwrap()
            .as_deref(),
        Some(&b"#EXTM3U\n#v2\n"[..])
    );
    assert_eq!(
        store
            .get("room", "720p", &HlsObject::Segment(10))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .get("room", "720p", &HlsObject::Init(0))
            .await
            .unwrap()
            .as_deref(),
        Some(&b"init bytes"[..])
    );

    // The layout is what a CDN in front of the bucket will ask for.
    let mut keys: Vec<String> = store
        .inner()
        .list_with_delimiter(Some(&Path::from(format!(
            "rostrum-hls-test/{run}/room/720p"
        ))))
        .await
        .unwrap()
        .objects
        .into_iter()
        .map(|m| m.location.filename().unwrap().to_owned())
        .collect();
    keys.sort();
    assert_eq!(keys, ["9.0.m4s", "9.m4s", "index.m3u8", "init.mp4"]);
    for k in keys {
        let path = Path::from(format!("rostrum-hls-test/{run}/room/720p/{k}"));
        store.inner().delete(&path).await.unwrap();
    }
    let master = store.key("room", "", &HlsObject::Master).unwrap();
    store.inner().delete(&master).await.unwrap();
}
