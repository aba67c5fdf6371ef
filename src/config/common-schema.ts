import { z } from "zod";

/** Pieces shared by the configuration schema modules. */

export const NAME_PATTERN = /^[a-z][a-z0-9_-]{0,62}$/;
export const name = z.string().regex(NAME_PATTERN, {
  message: "expected a lowercase name (letters, digits, - and _), starting with a letter",
});

export const s3Credentials = z
  .strictObject({
    accessKeyId: z.string().min(1).describe("Access key id; write `${ENV_VAR}`, not the value."),
    secretAccessKey: z
      .string()
      .min(1)
      .describe("Secret access key; write `${ENV_VAR}`, not the value."),
    sessionToken: z.string().min(1).optional().describe("Session token for temporary credentials."),
  })
  .describe(
    "Static credentials. Omit to use the AWS default chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, profiles, instance roles).",
  );
