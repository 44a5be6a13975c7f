from exfel_data.cli import main

main()
