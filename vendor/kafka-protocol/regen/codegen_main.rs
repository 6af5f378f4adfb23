use failure::Error;
use std::fs;
use std::path::PathBuf;

pub mod generate_messages;

// gregor: generate from a directory of Kafka message JSONs into an output dir (argv[1], argv[2]).
fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let input = PathBuf::from(&args[1]);
    let out = PathBuf::from(&args[2]);
    fs::create_dir_all(&out)?;
    let mut input_file_paths = Vec::new();
    for file in fs::read_dir(&input)? {
        let path = file?.path();
        if path.extension() == Some("json".as_ref()) {
            input_file_paths.push(path);
        }
    }
    generate_messages::run(out.to_str().unwrap(), input_file_paths)?;
    Ok(())
}
