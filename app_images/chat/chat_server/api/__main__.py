from chat_server.api.app import main

main()
