using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace HcService.Store.Migrations
{
    /// <inheritdoc />
    public partial class GroupsAndScopedIdempotency : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "IX_runs_IdempotencyKey",
                schema: "hc",
                table: "runs");

            migrationBuilder.AddColumn<string>(
                name: "Group",
                schema: "hc",
                table: "runs",
                type: "character varying(60)",
                maxLength: 60,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "IdempotencyOwner",
                schema: "hc",
                table: "runs",
                type: "character varying(40)",
                maxLength: 40,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "IdempotencyRequestSha256",
                schema: "hc",
                table: "runs",
                type: "character varying(64)",
                maxLength: 64,
                nullable: true);

            migrationBuilder.CreateTable(
                name: "groups",
                schema: "hc",
                columns: table => new
                {
                    Name = table.Column<string>(type: "character varying(60)", maxLength: 60, nullable: false),
                    CreatedByKeyId = table.Column<long>(type: "bigint", nullable: true),
                    CreatedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_groups", x => x.Name);
                });

            migrationBuilder.CreateIndex(
                name: "IX_runs_Group",
                schema: "hc",
                table: "runs",
                column: "Group");

            migrationBuilder.CreateIndex(
                name: "IX_runs_IdempotencyOwner_IdempotencyKey",
                schema: "hc",
                table: "runs",
                columns: new[] { "IdempotencyOwner", "IdempotencyKey" },
                unique: true);

            // Groups of earlier versions were their runs' group:<name> tags: they become groups, their runs members.
            // (Idempotency keys stored before this version have no owner: they are not replayed after the upgrade.)
            migrationBuilder.Sql("""
                INSERT INTO hc.groups ("Name", "CreatedAt")
                SELECT substr(t, 7), min(r."CreatedAt") FROM hc.runs r, unnest(r."Tags") AS t
                WHERE t LIKE 'group:%' AND length(t) BETWEEN 7 AND 66 GROUP BY substr(t, 7);
                UPDATE hc.runs r SET "Group" = m.name
                FROM (SELECT r2."Id", min(substr(t, 7)) AS name FROM hc.runs r2, unnest(r2."Tags") AS t
                      WHERE t LIKE 'group:%' AND length(t) BETWEEN 7 AND 66 GROUP BY r2."Id") m
                WHERE r."Id" = m."Id";
                """);

            migrationBuilder.AddForeignKey(
                name: "FK_runs_groups_Group",
                schema: "hc",
                table: "runs",
                column: "Group",
                principalSchema: "hc",
                principalTable: "groups",
                principalColumn: "Name",
                onDelete: ReferentialAction.Restrict);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropForeignKey(
                name: "FK_runs_groups_Group",
                schema: "hc",
                table: "runs");

            migrationBuilder.DropTable(
                name: "groups",
                schema: "hc");

            migrationBuilder.DropIndex(
                name: "IX_runs_Group",
                schema: "hc",
                table: "runs");

            migrationBuilder.DropIndex(
                name: "IX_runs_IdempotencyOwner_IdempotencyKey",
                schema: "hc",
                table: "runs");

            migrationBuilder.DropColumn(
                name: "Group",
                schema: "hc",
                table: "runs");

            migrationBuilder.DropColumn(
                name: "IdempotencyOwner",
                schema: "hc",
                table: "runs");

            migrationBuilder.DropColumn(
                name: "IdempotencyRequestSha256",
                schema: "hc",
                table: "runs");

            migrationBuilder.CreateIndex(
                name: "IX_runs_IdempotencyKey",
                schema: "hc",
                table: "runs",
                column: "IdempotencyKey",
                unique: true);
        }
    }
}
