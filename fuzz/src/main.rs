//! `cairn-fuzz <target>`: runs one target of `fuzz-targets` under AFL++ (`cargo afl fuzz ...
//! -- cairn-fuzz <target>`); with a file argument after the target, runs that one input (for
//! reproducing a crash outside the fuzzer). `cairn-fuzz --write-seeds <dir>` writes the
//! generated seeds into `<dir>/<target>/`.

use std::path::Path;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [flag, dir] if flag == "--write-seeds" => write_seeds(Path::new(dir)),
        [name, input] => {
            let target = target(name);
            let data =
                std::fs::read(input).unwrap_or_else(|error| exit(&format!("{input}: {error}")));
            target(&data);
        }
        [name] => {
            let target = target(name);
            afl::fuzz!(|data: &[u8]| target(data));
        }
        _ => exit("usage: cairn-fuzz <target> [input] | cairn-fuzz --write-seeds <dir>"),
    }
}

fn target(name: &str) -> fuzz_targets::Target {
    fuzz_targets::target(name).unwrap_or_else(|| {
        let names: Vec<&str> = fuzz_targets::TARGETS
            .iter()
            .map(|(name, _)| *name)
            .collect();
        exit(&format!("no target {name}; targets: {}", names.join(" ")))
    })
}

fn write_seeds(dir: &Path) {
    for (name, file, data) in fuzz_targets::seeds::seeds() {
        let target_dir = dir.join(name);
        let path = target_dir.join(format!("seed-{file}"));
        if let Err(error) =
            std::fs::create_dir_all(&target_dir).and_then(|()| std::fs::write(&path, data))
        {
            exit(&format!("{}: {error}", path.display()));
        }
    }
}

fn exit(message: &str) -> ! {
    eprintln!("cairn-fuzz: {message}");
    std::process::exit(2)
}
