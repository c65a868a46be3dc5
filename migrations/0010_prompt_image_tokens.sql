-- What the prompt's inline images count for in prompt_estimate, each by its
-- pixels as its header says: a cut is judged on the estimate without them.
-- NULL: no images, or a row written before it was kept (then each of its
-- prompt_images counted 1,600 tokens).
ALTER TABLE requests ADD COLUMN prompt_image_tokens INTEGER;
