// synctv browser client
