CREATE TABLE IF NOT EXISTS orders (id serial primary key);
