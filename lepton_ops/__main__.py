from lepton_ops.cli.app import main

main()
