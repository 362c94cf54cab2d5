#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tandem::cli::run().await
}
