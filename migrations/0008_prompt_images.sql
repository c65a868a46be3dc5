-- How many inline images the prompt held (each counted IMAGE_TOKENS in
-- prompt_estimate): a cut is judged on the estimate without them, since
-- backends count an image anywhere from tens to thousands of tokens.
-- NULL: none, or a row written before it was kept.
ALTER TABLE requests ADD COLUMN prompt_images INTEGER;
