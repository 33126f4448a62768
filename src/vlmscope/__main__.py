from vlmscope.cli import main

main()
