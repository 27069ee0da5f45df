from qml_cli.cli.app import main

main()
