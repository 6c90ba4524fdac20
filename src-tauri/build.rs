fn main() {
    // The app's own commands, as permissions the capability file grants to
    // the popover (which loads the engine's dashboard over loopback HTTP).
    tauri_build::try_build(tauri_build::Attributes::new().app_manifest(
        tauri_build::AppManifest::new().commands(&[
            "heal",
            "settings",
            "set_setting",
            "open_config",
            "fleet_token",
        ]),
    ))
    .expect("tauri build script");
}
