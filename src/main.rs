use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = drctl::cli::Cli::parse_args();
    drctl::cli::init_logging(&cli.global);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(drctl::error::exit::FAILURE);
        }
    };
    match runtime.block_on(drctl::cli::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("{}", e.render());
            ExitCode::from(e.exit_code())
        }
    }
}
