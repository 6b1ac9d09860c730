-- A customer account's number: nine digits its admins may hand to a partner, who asks for
-- access with it (instead of the account's UUID). Given out on first use, unique.
ALTER TABLE accounts ADD COLUMN customer_number TEXT;
CREATE UNIQUE INDEX accounts_customer_number ON accounts (customer_number)
    WHERE customer_number IS NOT NULL;
