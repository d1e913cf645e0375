//! Part 4: schemathesis with every check against the running chirp's
//! OpenAPI document.

use crate::prelude::*;

/// Part 4. Returns whether it held (`true` when skipped).
pub(crate) async fn schemathesis(options: &Options) -> bool {
    println!("\n## 4. schemathesis against the OpenAPI document\n");
    let home = std::env::var("HOME").unwrap_or_else(|_| "/tmp".into());
    let venv = Path::new(&home).join(".cache/chirp-reliability/venv");
    let st = venv.join("bin/st");
    if !st.exists() {
        let venv_text = venv.display().to_string();
        let pip = venv.join("bin/pip").display().to_string();
        if !(sh("python3", &["-m", "venv", &venv_text])
            && sh(
                &pip,
                &[
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "schemathesis",
                ],
            ))
        {
            println!("schemathesis: SKIPPED (could not install it with pip)");
            return true;
        }
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let plugins = plugins_dir(options, dir.path());
    std::fs::copy(&options.rules_plugin, plugins.join("rules-earlybird.wasm"))
        .expect("copy rules plugin");
    let mock = Mock::start(Plan::success()).await;
    let setup = Setup::new(&options.chirp, &plugins, "mem://".into(), &mock.base);
    let chirp = start(&setup);
    let token = chirp_bench::process::admin_token("chirp-reliability");
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemathesis.toml");
    let output = Command::new(&st)
        .args([
            "--config-file",
            &config.display().to_string(),
            "run",
            &format!("{}/api/openapi.json", chirp.base),
            "--checks",
            "all",
            "--max-examples",
            &options.schemathesis_examples.to_string(),
            "--header",
            &format!("Authorization: Bearer {token}"),
        ])
        .output();
    let alive = {
        let mut chirp = chirp;
        let alive = chirp.alive();
        chirp.stop();
        alive
    };
    let Ok(output) = output else {
        println!("schemathesis: could not run {}", st.display());
        return false;
    };
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        println!("    {line}");
    }
    let held = output.status.success() && alive;
    println!(
        "\nschemathesis: {} (exit {:?}, chirp alive afterwards: {alive})",
        if held { "HELD" } else { "BROKEN" },
        output.status.code()
    );
    held
}
