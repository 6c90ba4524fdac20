// No console window on Windows in release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    #[cfg(target_os = "linux")]
    for (name, value) in clawfleet_tray::TRAY_ENV {
        if std::env::var_os(name).is_none() {
            // SAFETY: this is the first thing `main` does: no other thread
            // exists yet, so nothing can read the environment while it changes.
            unsafe { std::env::set_var(name, value) };
        }
    }
    std::process::exit(clawfleet_tray::run());
}
