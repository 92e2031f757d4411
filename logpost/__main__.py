from logpost.cli import main

main()
