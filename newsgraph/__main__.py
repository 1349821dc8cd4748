from newsgraph.cli import main

main()
