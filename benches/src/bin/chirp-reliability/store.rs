//! Part 3: the store's disk fills up (3a), its file system turns
//! read-only (3b).

use crate::prelude::*;

/// chirp on a store under `mount`, on a fixed port (it is restarted).
pub(crate) fn store_setup(options: &Options, dir: &Path, mount: &str, mock: &Mock) -> Setup {
    let plugins = plugins_dir(options, dir);
    let mut setup = Setup::new(
        &options.chirp,
        &plugins,
        format!("surrealkv://{mount}/store"),
        &mock.base,
    )
    .set("CHIRP_RETRY_BACKOFF", "200ms");
    setup.listen = format!("127.0.0.1:{}", free_port());
    setup
}

/// Part 3a. The disk fills up. Returns whether it held (`true` when
/// skipped). (The read-only fault is part 3b, on ext4: a tmpfs cannot be
/// remounted read-only under a running writer.)
pub(crate) async fn store_disk_full(options: &Options) -> bool {
    println!("\n## 3a. Store fault: the disk fills (tmpfs of 64 MiB)\n");
    let dir = tempfile::tempdir().expect("temp dir");
    let mount = dir.path().join("mnt");
    std::fs::create_dir_all(&mount).expect("mount point");
    let mount_text = mount.display().to_string();
    if !sh(
        "mount",
        &["-t", "tmpfs", "-o", "size=64m", "tmpfs", &mount_text],
    ) {
        println!("disk full: SKIPPED (cannot mount a tmpfs; needs root)");
        return true;
    }
    let mock = Mock::start(Plan::success()).await;
    let setup = store_setup(options, dir.path(), &mount_text, &mock);
    let mut chirp = start(&setup);
    let client = admin_client(4);
    let base = chirp.base.clone();
    let mut accepted: Vec<String> = Vec::new();
    let mut table = StepTable::start();

    table
        .healthy("healthy", &mut chirp, &client, "before", &mut accepted)
        .await;
    // Let delivery go idle, so that while the disk is full only accepting
    // writes: its own failure must latch the store.
    settle(&client, &base, Duration::from_secs(30)).await;

    // Disk full.
    let filler = mount.join("filler");
    let filled = Command::new("dd")
        .args(["if=/dev/zero", &format!("of={}", filler.display()), "bs=1M"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok();
    let Sent {
        accepted: keys,
        other,
        refused: refused_during_fault,
    } = send_some(&client, &base, "full", 20).await;
    let ok = keys.len();
    accepted.extend(keys);
    let alive = chirp.alive();
    // A message may still fit in space the store had already allocated: a
    // `202` is fine as long as it is kept (checked at the end); anything
    // else must be a `503`, and the fault must have been felt.
    let refused = other.get(&503).copied().unwrap_or(0);
    // A failed log write latches: chirp reports itself not live (as a
    // supervisor's liveness probe would see) until it is restarted.
    let health = json_of(
        client
            .get(format!("{base}/api/notifications/health"))
            .send()
            .await
            .expect("GET health"),
    )
    .await;
    let latched = health["store"] == "needs_restart";
    table.row(
        &format!(
            "disk full (then liveness says `needs_restart`); refused: {}",
            codes(&refused_during_fault)
        ),
        20,
        ok,
        &other,
        alive,
        filled && refused > 0 && ok + refused == 20 && latched,
    );
    let _ = std::fs::remove_file(&filler);
    if latched {
        chirp.stop();
        chirp = start(&setup);
        println!(
            "| space freed; liveness said `needs_restart`, so chirp was restarted (the supervisor's part) | | | | | |"
        );
    }
    match recovery(&client, &base, "after-full", Duration::from_secs(30)).await {
        Some((took, key)) => {
            accepted.push(key);
            println!(
                "| space freed: first 202 after | {:.1} s | | | | |",
                took.as_secs_f64()
            );
        }
        None => {
            let alive = chirp.alive();
            table.row(
                "space freed: no 202 within 30 s",
                0,
                0,
                &HashMap::new(),
                alive,
                false,
            );
        }
    }
    table
        .healthy("healthy again", &mut chirp, &client, "after", &mut accepted)
        .await;

    // Everything accepted is delivered, and survives a restart.
    if !chirp.alive() {
        chirp = start(&setup);
    }
    let settled = settle(&client, &chirp.base, Duration::from_secs(60)).await;
    chirp.stop();
    let chirp = start(&setup);
    let stored = all_messages(&client, &chirp.base).await;
    chirp.stop();
    table.accounting(&accepted, &refused_during_fault, &stored, settled);
    sh("umount", &[&mount_text]);
    table.verdict("disk full")
}

/// Part 3b. The store's file system turns read-only under a running chirp,
/// the way ext4 does after an I/O error (`errors=remount-ro`), triggered
/// through ext4's `trigger_fs_error` on a loop-mounted image. The operator's
/// repair (stop chirp, unmount, `e2fsck`, mount, start chirp) is the
/// recovery. Returns whether it held (`true` when it cannot be set up).
pub(crate) async fn store_read_only(options: &Options) -> bool {
    println!("\n## 3b. Store fault: the file system turns read-only (ext4 errors=remount-ro)\n");
    let dir = tempfile::tempdir().expect("temp dir");
    let image = dir.path().join("store.ext4");
    let mount = dir.path().join("mnt");
    std::fs::create_dir_all(&mount).expect("mount point");
    let (image_text, mount_text) = (image.display().to_string(), mount.display().to_string());
    let mount_image = || {
        sh(
            "mount",
            &["-o", "loop,errors=remount-ro", &image_text, &mount_text],
        )
    };
    if !(sh("truncate", &["-s", "256M", &image_text])
        && sh("mkfs.ext4", &["-q", "-F", &image_text])
        && mount_image())
    {
        println!("read-only file system: SKIPPED (needs root, loop devices and mkfs.ext4)");
        return true;
    }
    let device = Command::new("findmnt")
        .args(["-no", "SOURCE", &mount_text])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let trigger = format!(
        "/sys/fs/ext4/{}/trigger_fs_error",
        device.rsplit('/').next().unwrap_or_default()
    );
    let mock = Mock::start(Plan::success()).await;
    let setup = store_setup(options, dir.path(), &mount_text, &mock);
    let mut chirp = start(&setup);
    let client = admin_client(4);
    let base = chirp.base.clone();
    let mut accepted: Vec<String> = Vec::new();
    let mut table = StepTable::start();

    table
        .healthy("healthy", &mut chirp, &client, "before-ro", &mut accepted)
        .await;

    let injected = std::fs::write(&trigger, "chirp-reliability").is_ok()
        && std::fs::write(mount.join("probe"), "x").is_err();
    let Sent {
        accepted: keys,
        other,
        refused: refused_during_fault,
    } = send_some(&client, &base, "readonly", 20).await;
    let ok = keys.len();
    accepted.extend(keys);
    let alive = chirp.alive();
    table.row(
        &format!(
            "file system read-only (EROFS on every write); refused: {}",
            codes(&refused_during_fault)
        ),
        20,
        ok,
        &other,
        alive,
        injected && alive && ok == 0 && other.get(&503) == Some(&20),
    );

    // The operator's repair.
    chirp.stop();
    let repaired = sh("umount", &[&mount_text])
        && Command::new("e2fsck")
            .args(["-fy", &image_text])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.code().is_some_and(|c| c <= 1))
        && mount_image();
    if !repaired {
        table.row(
            "repair (umount, e2fsck, mount) failed",
            0,
            0,
            &HashMap::new(),
            false,
            false,
        );
        sh("umount", &[&mount_text]);
        return table.verdict("read-only file system");
    }
    chirp = start(&setup);
    table
        .healthy(
            "repaired (umount, e2fsck, mount) and chirp restarted",
            &mut chirp,
            &client,
            "after-ro",
            &mut accepted,
        )
        .await;
    let settled = settle(&client, &base, Duration::from_secs(60)).await;
    let stored = all_messages(&client, &base).await;
    chirp.stop();
    table.accounting(&accepted, &refused_during_fault, &stored, settled);
    sh("umount", &[&mount_text]);
    table.verdict("read-only file system")
}
