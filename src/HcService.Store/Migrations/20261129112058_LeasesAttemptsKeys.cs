using System;
using Microsoft.EntityFrameworkCore.Migrations;
using Npgsql.EntityFrameworkCore.PostgreSQL.Metadata;

#nullable disable

namespace HcService.Store.Migrations
{
    /// <inheritdoc />
    public partial class LeasesAttemptsKeys : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<DateTimeOffset>(
                name: "LeaseExpiresAt",
                schema: "hc",
                table: "runs",
                type: "timestamp with time zone",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "LeaseOwner",
                schema: "hc",
                table: "runs",
                type: "character varying(200)",
                maxLength: 200,
                nullable: true);

            migrationBuilder.AddColumn<int>(
                name: "MaxAttempts",
                schema: "hc",
                table: "runs",
                type: "integer",
                nullable: false,
                defaultValue: 3);   // runs from before leases: three attempts, the service default

            migrationBuilder.CreateTable(
                name: "api_keys",
                schema: "hc",
                columns: table => new
                {
                    Id = table.Column<long>(type: "bigint", nullable: false)
                        .Annotation("Npgsql:ValueGenerationStrategy", NpgsqlValueGenerationStrategy.IdentityByDefaultColumn),
                    Name = table.Column<string>(type: "character varying(200)", maxLength: 200, nullable: false),
                    Prefix = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: false),
                    Hash = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    Scope = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: false),
                    CreatedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    RevokedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_api_keys", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "run_attempts",
                schema: "hc",
                columns: table => new
                {
                    RunId = table.Column<long>(type: "bigint", nullable: false),
                    Attempt = table.Column<int>(type: "integer", nullable: false),
                    Worker = table.Column<string>(type: "character varying(200)", maxLength: 200, nullable: false),
                    StartedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    EndedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true),
                    Outcome = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: true),
                    Reason = table.Column<string>(type: "text", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_run_attempts", x => new { x.RunId, x.Attempt });
                    table.ForeignKey(
                        name: "FK_run_attempts_runs_RunId",
                        column: x => x.RunId,
                        principalSchema: "hc",
                        principalTable: "runs",
                        principalColumn: "Id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateIndex(
                name: "IX_runs_Status_LeaseExpiresAt",
                schema: "hc",
                table: "runs",
                columns: new[] { "Status", "LeaseExpiresAt" });

            migrationBuilder.CreateIndex(
                name: "IX_api_keys_Hash",
                schema: "hc",
                table: "api_keys",
                column: "Hash",
                unique: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "api_keys",
                schema: "hc");

            migrationBuilder.DropTable(
                name: "run_attempts",
                schema: "hc");

            migrationBuilder.DropIndex(
                name: "IX_runs_Status_LeaseExpiresAt",
                schema: "hc",
                table: "runs");

            migrationBuilder.DropColumn(
                name: "LeaseExpiresAt",
                schema: "hc",
                table: "runs");

            migrationBuilder.DropColumn(
                name: "LeaseOwner",
                schema: "hc",
                table: "runs");

            migrationBuilder.DropColumn(
                name: "MaxAttempts",
                schema: "hc",
                table: "runs");
        }
    }
}
