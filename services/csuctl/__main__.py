from services.csuctl.app import main

main()
